"""The evaluation protocol: our PSNR/SSIM against scikit-image and an independent reference."""
import numpy as np
import pytest
from scipy.ndimage import correlate1d
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from common.metrics import psnr_y, quantize, rgb_to_y, ssim_y
from common.resize import bicubic_downscale, bicubic_upscale, mod_crop


def reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """The papers' SSIM (11x11 Gaussian, sigma 1.5, 'valid' window), written independently."""
    x = np.arange(11) - 5
    g = np.exp(-(x**2) / (2 * 1.5**2))
    g /= g.sum()

    def blur(img):
        return correlate1d(correlate1d(img, g, axis=0, mode="reflect"), g, axis=1, mode="reflect")[5:-5, 5:-5]

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    smap = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(smap.mean())


@pytest.fixture
def pair(rng):
    hr = rng.random((40, 36, 3)).astype(np.float32)
    sr = np.clip(hr + rng.normal(0, 0.05, hr.shape), 0, 1).astype(np.float32)
    return sr, hr


def test_y_channel_bt601():
    white, black = np.full((1, 1, 3), 255.0), np.zeros((1, 1, 3))
    assert rgb_to_y(white)[0, 0] == pytest.approx(235.0, abs=0.01)
    assert rgb_to_y(black)[0, 0] == pytest.approx(16.0)


@pytest.mark.parametrize("crop", [0, 2, 4])
def test_psnr_matches_skimage(pair, crop):
    sr, hr = pair
    a, b = rgb_to_y(quantize(sr)), rgb_to_y(quantize(hr))
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    assert psnr_y(sr, hr, crop) == pytest.approx(peak_signal_noise_ratio(b, a, data_range=255), abs=1e-6)


@pytest.mark.parametrize("crop", [0, 4])
def test_ssim_matches_skimage_and_reference(pair, crop):
    sr, hr = pair
    a, b = rgb_to_y(quantize(sr)), rgb_to_y(quantize(hr))
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    ours = ssim_y(sr, hr, crop)
    sk = structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ours == pytest.approx(sk, abs=1e-9)
    assert ours == pytest.approx(reference_ssim(a, b), abs=1e-6)


def test_identical_images():
    img = np.random.default_rng(0).random((16, 16, 3))
    assert psnr_y(img, img) == float("inf")
    assert ssim_y(img, img) == pytest.approx(1.0)


def test_shape_mismatch_is_clear():
    with pytest.raises(ValueError, match="shape mismatch"):
        psnr_y(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))


def test_mod_crop_and_bicubic_shapes(rng):
    img = rng.random((37, 53, 3)).astype(np.float32)
    hr = mod_crop(img, 4)
    assert hr.shape == (36, 52, 3)
    lr = bicubic_downscale(hr, 4)
    assert lr.shape == (9, 13, 3)
    assert bicubic_upscale(lr, 4).shape == hr.shape
    grey = bicubic_downscale(hr[..., :1], 2)
    assert grey.shape == (18, 26, 1)


@pytest.mark.parametrize("scale,published", [(2, 33.66), (4, 28.42)])
def test_bicubic_set5_reproduces_published(shared_data, scale, published):
    """The protocol check the papers allow: bicubic on Set5 within 0.3 dB of the published figure."""
    from train.evaluate import evaluate_sr, load_set

    row = evaluate_sr("bicubic", scale, {"Set5": load_set("Set5")})[0]
    assert abs(row["psnr_y"] - published) < 0.3, row
