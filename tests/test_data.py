"""Training data: degradations, patches, augmentation, and bad files in a data folder."""
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from train.data import (
    CountingSampler,
    DataError,
    PatchConfig,
    SRPatchDataset,
    degrade_bicubic,
    degrade_pixelate_noise,
    load_folder,
    split_validation,
    validation_pairs,
)


def test_bicubic_degradation_matches_pil(rng):
    hr = (rng.random((32, 24, 3)) * 255).astype(np.uint8)
    lr = degrade_bicubic(hr.astype(np.float32) / 255, 4, rng)
    expected = np.asarray(Image.fromarray(hr).resize((6, 8), Image.BICUBIC), np.float32) / 255
    assert lr.shape == (8, 6, 3) and np.allclose(lr, expected)


def test_pixelate_noise_is_block_mean_plus_noise(rng):
    hr = np.zeros((8, 8, 3), np.float32)
    hr[:4, :4] = 1.0
    clean = degrade_pixelate_noise(hr, 4, rng, noise_range=(0.0, 0.0))
    assert clean.shape == (2, 2, 3) and clean[0, 0, 0] == 1.0 and clean[1, 1, 0] == 0.0
    noisy = degrade_pixelate_noise(np.full((64, 64, 3), 0.5, np.float32), 2, rng, noise_range=(0.05, 0.05))
    assert 0.03 < noisy.std() < 0.07  # Gaussian noise of the requested strength, quantised to 8 bits
    assert np.allclose(noisy * 255, np.rint(noisy * 255), atol=1e-3)


@pytest.mark.parametrize("degradation,scale", [("bicubic", 2), ("bicubic", 4), ("pixelate_noise", 2)])
def test_patch_dataset_shapes_and_determinism(image_folder, degradation, scale):
    images, _ = load_folder(image_folder)
    ds = SRPatchDataset(images, PatchConfig(scale, 12, degradation), seed=3)
    lr, hr = ds[5]
    assert lr.shape == (3, 12, 12) and hr.shape == (3, 12 * scale, 12 * scale)
    assert lr.dtype == torch.float32 and 0 <= float(lr.min()) and float(hr.max()) <= 1
    lr2, hr2 = ds[5]
    assert torch.equal(lr, lr2) and torch.equal(hr, hr2)  # item i is a pure function of (seed, i)
    assert not torch.equal(ds[6][1], hr)


def test_counting_sampler_resumes_the_stream():
    it = iter(CountingSampler(10))
    assert [next(it) for _ in range(3)] == [10, 11, 12]


def test_augmentation_covers_flips_and_rotations(rng):
    img = np.zeros((24, 24, 3), np.float32)
    img[:6, :6] = 1.0  # a corner marker
    ds = SRPatchDataset([img], PatchConfig(2, 12), seed=0)
    corners = {tuple(np.argwhere(ds[i][1][0].numpy() == 1.0).mean(0) > 12) for i in range(40)}
    assert len(corners) == 4


def test_bad_files_are_skipped_with_a_warning_naming_them(image_folder, rng):
    (image_folder / "zero.png").write_bytes(b"")
    (image_folder / "notes.jpg").write_text("not an image")
    good = image_folder / "img_1.png"
    (image_folder / "truncated.png").write_bytes(good.read_bytes()[:300])
    Image.fromarray((rng.random((40, 40)) * 255).astype(np.uint8), "L").save(image_folder / "grey.png")
    Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).convert("CMYK").save(image_folder / "cmyk.jpg")
    Image.fromarray((rng.random((40, 40, 4)) * 255).astype(np.uint8), "RGBA").save(image_folder / "alpha.png")
    Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).convert("P").save(image_folder / "palette.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images, names = load_folder(image_folder)
    messages = " ".join(str(w.message) for w in caught)
    for bad in ("zero.png", "notes.jpg", "truncated.png"):
        assert bad in messages and bad not in names
    for ok in ("grey.png", "cmyk.jpg", "alpha.png", "palette.png"):
        assert ok in names
    assert all(im.ndim == 3 and im.shape[2] == 3 for im in images)


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_folder(tmp_path / "nope")
    with pytest.raises(DataError, match="no image files"):
        load_folder(tmp_path)


def test_patch_larger_than_every_image(image_folder):
    images, _ = load_folder(image_folder)
    with pytest.raises(DataError, match="use a smaller --patch"):
        SRPatchDataset(images, PatchConfig(4, 64))


def test_validation_split_and_pairs(image_folder):
    images, names = load_folder(image_folder)
    train, train_names, val, val_names = split_validation(images, names, 2)
    assert len(val) == 2 and len(train) == len(images) - 2 and not set(train_names) & set(val_names)
    for lr, hr in validation_pairs(val, 4):
        assert hr.shape[0] == lr.shape[0] * 4 and hr.shape[1] == lr.shape[1] * 4
