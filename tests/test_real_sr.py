"""Real-world SR: the strength-conditioned FlashSR, its training data, --precision, export and serving."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models import get_spec
from models.checkpoint import save_checkpoint
from serve.contract import InputError
from train.data import PatchConfig, SRPatchDataset
from train.loop import autocast, bf16_supported, init_from, resolve_precision


def real_model(scale=4, perturb=True):
    torch.manual_seed(0)
    model = get_spec(f"flashsr_real_x{scale}").build().eval()
    if perturb:  # a trained model's strength MLP and upsampler are not zero; 0.02 keeps the output near
        # the image range (0.3 gave values up to 79, where fp32 kernels of an AVX2 CPU differ by 1.1e-4)
        with torch.no_grad():
            for p in [*model.strength_mlp.parameters(), model.upsample[0].weight]:
                p.add_(torch.randn_like(p) * 0.02)
    return model


def test_strength_model_starts_as_plain_flashsr(tmp_path):
    base = get_spec("flashsr_x4").build().eval()
    with torch.no_grad():
        for p in base.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    save_checkpoint(tmp_path / "base.safetensors", base, arch="flashsr", args={"scale": 4})
    model = real_model(perturb=False)
    assert init_from(model, tmp_path / "base.safetensors") == len(base.state_dict())
    x = torch.rand(2, 3, 12, 12)
    with torch.no_grad():
        ref = base(x)
        for s in (0.0, 1.0):
            assert torch.allclose(model(x, strength=torch.full((2, 1), s)), ref, atol=1e-6)


def test_strength_changes_the_output_per_image():
    model = real_model()
    x = torch.rand(1, 3, 12, 12).expand(2, -1, -1, -1)
    with torch.no_grad():
        out = model(x, strength=torch.tensor([[0.0], [1.0]]))
        default = model(x[:1])
        mid = model(x[:1], strength=torch.tensor([[0.5]]))
    assert (out[0] - out[1]).abs().max() > 1e-3
    assert torch.allclose(default, mid)  # no strength = the default 0.5


def test_contract_lists_the_strength_input():
    io = get_spec("flashsr_real_x4").io
    assert [(t.name, t.rank) for t in io.inputs] == [("lr", 4), ("strength", 2)] and io.outputs[0].scale == 4
    assert get_spec("flashsr_real_x2").io.input_names == ("lr", "strength")
    assert get_spec("flashsr_x4").io.input_names == ("lr",) and not get_spec("flashsr_x4").strength_input


def test_real_degradation_dataset_yields_strength(image_folder):
    from train.data import load_folder

    images, _ = load_folder(image_folder)
    ds = SRPatchDataset(images, PatchConfig(4, 12, "real"), seed=0)
    strengths = []
    for i in range(12):
        lr, hr, s = ds[i]
        assert lr.shape == (3, 12, 12) and hr.shape == (3, 48, 48) and s.shape == (1,)
        strengths.append(float(s))
    assert min(strengths) >= 0 and max(strengths) <= 1 and len(set(strengths)) > 3
    assert torch.equal(ds[5][0], ds[5][0])  # seeded per index


def test_strength_zero_is_given_only_with_clean_bicubic_patches():
    from train.data import MIN_REAL_LEVEL, degrade_bicubic, degrade_real_with_strength

    hr = np.random.default_rng(1).random((48, 48, 3)).astype(np.float32)
    zeros = 0
    for seed in range(60):
        lr, strength = degrade_real_with_strength(hr, 4, np.random.default_rng(seed))
        if strength == 0:
            zeros += 1
            np.testing.assert_array_equal(lr, degrade_bicubic(hr, 4, np.random.default_rng(0)))
        else:
            assert MIN_REAL_LEVEL <= strength <= 1
    assert 0 < zeros < 30


def test_clean_fraction_sets_the_share_of_clean_patches_in_the_dataset():
    """train.sr --clean-fraction reaches the patches: 1 gives only clean strength-0 pairs, 0 none."""
    from train.data import PatchConfig, SRPatchDataset

    images = [np.random.default_rng(2).random((64, 64, 3)).astype(np.float32)]
    for fraction, want in ((1.0, {0.0}), (0.0, set())):
        data = SRPatchDataset(images, PatchConfig(2, 16, "real", clean_fraction=fraction), seed=0)
        strengths = {float(data[i][2]) for i in range(12)}
        assert (strengths & {0.0}) == want and (fraction == 1.0 or min(strengths) > 0)


def test_precision_resolution():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("auto", cpu) == ("bf16" if bf16_supported(cpu) else "fp32")
    with pytest.raises(SystemExit, match="precision"):
        resolve_precision("fp8", cpu)
    if bf16_supported(cpu):
        with autocast("bf16", cpu):
            y = torch.nn.Conv2d(3, 3, 3)(torch.rand(1, 3, 8, 8))
        assert y.dtype == torch.bfloat16
    with autocast("fp32", cpu):
        assert torch.nn.Conv2d(3, 3, 3)(torch.rand(1, 3, 8, 8)).dtype == torch.float32


@pytest.fixture
def real_weights(tmp_path):
    path = tmp_path / "flashsr_real_x2.safetensors"
    save_checkpoint(path, real_model(scale=2), arch="flashsr", args={"scale": 2, "strength": True})
    return path


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), "0.5", None.__class__, True])
def test_upscale_rejects_bad_strength(bad, real_weights):
    from serve.sr import upscale

    with pytest.raises(InputError, match="strength"):
        upscale(np.zeros((8, 8, 3), np.float32), "flashsr_real_x2", "torch-cpu", strength=bad,
                weights_path=str(real_weights))


def test_upscale_passes_strength_through_tiles(real_weights):
    from serve.sr import upscale

    img = np.random.default_rng(0).random((70, 76, 3)).astype(np.float32)
    run = lambda s, tile: upscale(img, "flashsr_real_x2", "torch-cpu", tile=tile, strength=s,  # noqa: E731
                                  weights_path=str(real_weights))
    whole, tiled = run(1.0, 0), run(1.0, 72)  # 72: above 67, the smallest useful tile for FlashSR (overlap 50)
    assert tiled.info["tiles"] > 1 and tiled.info["strength"] == 1.0
    assert np.abs(whole.image - run(0.0, 0).image).max() > 1e-3
    assert run(None, 0).info["strength"] == 0.5
    assert np.abs(whole.image - tiled.image).max() < 1e-4


@pytest.mark.slow
def test_onnx_export_takes_strength_and_matches_torch(real_weights, tmp_path):
    import onnxruntime as ort

    from export.onnx_export import export_onnx

    path = export_onnx("flashsr_real_x2", real_weights, tmp_path / "onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["lr", "strength"]
    x = np.random.default_rng(1).random((2, 3, 16, 20), dtype=np.float32)
    s = np.array([[0.0], [1.0]], np.float32)
    got = session.run(None, {"lr": x, "strength": s})[0]
    with torch.no_grad():
        want = real_model(scale=2)(torch.from_numpy(x), strength=torch.from_numpy(s)).numpy()
    assert np.abs(got - want).max() < 1e-4


def test_evaluate_sr_real_presets_label_rows_and_pass_strength(real_weights):
    from evaluate.sr import evaluate_sr, make_sr_pair

    hr = np.random.default_rng(2).random((40, 44, 3)).astype(np.float32)
    a, b = make_sr_pair(hr, 2, "real-medium", seed=3), make_sr_pair(hr, 2, "real-medium", seed=3)
    assert np.array_equal(a[1], b[1]) and not np.array_equal(a[1], make_sr_pair(hr, 2)[1])
    rows = {s: evaluate_sr("flashsr_real_x2", 2, {"tiny": [("a", hr)]}, real_weights, "cpu", "real-heavy", s)[0]
            for s in (0.0, 1.0)}
    assert rows[1.0]["set"] == "tiny:real-heavy" and rows[1.0]["strength"] == 1.0
    assert rows[0.0]["psnr_y"] != rows[1.0]["psnr_y"]
    clean = evaluate_sr("bicubic", 2, {"tiny": [("a", hr)]})[0]
    assert clean["set"] == "tiny" and "strength" not in clean
