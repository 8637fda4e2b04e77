"""Colorization: models, Lab conversion, losses, training smoke run, evaluation, export parity, serving."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import lab2rgb, rgb2lab

from common.images import read_image
from common.paths import PROJECT_ROOT
from models import get_spec, save_checkpoint
from models.colorize_lab import ColorizeLab
from models.grey2rgb import Grey2RGBAutoEncoder
from models.lab_color import grey_from_rgb, grey_to_rgb, lab_to_rgb, rgb_to_lab
from serve.contract import InputError
from tests.conftest import smooth_image
from train.colorize_losses import chroma_loss, mep_loss, mse_loss, ssim_loss, ssim_torch


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """Checkpoints of untrained (slightly perturbed, so chroma is non-zero) colorize models."""
    folder = tmp_path_factory.mktemp("colorize_weights")
    torch.manual_seed(0)
    paths = {}
    for name in ("colorize_lab", "grey2rgb_mse"):
        spec = get_spec(name)
        model = spec.build()
        for p in model.parameters():
            p.data.add_(torch.randn_like(p) * 0.02)
        paths[name] = folder / f"{name}.safetensors"
        save_checkpoint(paths[name], model, arch=spec.arch, args=dict(spec.kwargs))
    yield paths
    from serve.runtime import clear_cache

    clear_cache()


# ---------------------------------------------------------------- models and colour conversion

@pytest.mark.parametrize("model", [ColorizeLab(), Grey2RGBAutoEncoder()], ids=["lab", "grey2rgb"])
def test_model_shapes(model):
    grey = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        out = model.eval()(grey)
    assert out.shape == (2, 3, 64, 96)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_lab_round_trip_matches_skimage(rng):
    rgb = rng.random((2, 3, 13, 17), dtype=np.float32)
    lab = rgb_to_lab(torch.from_numpy(rgb)).numpy()
    want = rgb2lab(rgb.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    assert np.abs(lab - want).max() < 1e-3
    vivid = want.copy()
    vivid[:, 1:] *= 1.7  # partly out of gamut: clipping must match too
    got = lab_to_rgb(torch.from_numpy(vivid.astype(np.float32))).numpy()
    assert np.abs(got - lab2rgb(vivid.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)).max() < 1e-4
    assert np.abs(lab_to_rgb(torch.from_numpy(lab)).numpy() - rgb).max() < 1e-4


def test_lab_model_keeps_exact_lightness(rng):
    """An untrained ColorizeLab (zero chroma head) returns the neutral colour of the input L."""
    rgb = torch.from_numpy(rng.random((1, 3, 64, 64), dtype=np.float32))
    grey = grey_from_rgb(rgb)
    with torch.no_grad():
        out = ColorizeLab().eval()(grey)
    assert torch.allclose(out, grey_to_rgb(grey), atol=1e-6)
    assert np.abs(rgb2lab(out[0].numpy().transpose(1, 2, 0))[..., 0] / 100 - grey[0, 0].numpy()).max() < 1e-3


# ---------------------------------------------------------------- losses

def test_losses_are_sane(rng):
    target = torch.from_numpy(smooth_image(rng, 48, 48).transpose(2, 0, 1)[None].copy())
    worse = (target + 0.2 * torch.rand_like(target)).clamp(0, 1)
    assert float(mse_loss(target, target)) == 0.0
    assert float(ssim_loss(target, target)) < 1e-6 < float(ssim_loss(worse, target))
    assert np.isfinite(float(mep_loss(worse, target)))
    assert float(mep_loss(target, target)) < float(mep_loss(target * 0.5, target))
    from skimage.metrics import structural_similarity

    want = structural_similarity(worse[0].numpy(), target[0].numpy(), data_range=1.0, gaussian_weights=True,
                                 sigma=1.5, use_sample_covariance=False, channel_axis=0)
    assert abs(float(ssim_torch(worse, target)) - want) < 5e-3
    ab = rgb_to_lab(target)[:, 1:]
    assert float(chroma_loss(ab, ab)) < 1e-6
    assert float(chroma_loss(ab * 0.3, ab)) > float(chroma_loss(ab * 0.9, ab))  # desaturation costs


# ---------------------------------------------------------------- training and evaluation

def _env(data_root: Path) -> dict:
    return {**os.environ, "STSR_DATA": str(data_root), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(PROJECT_ROOT)}


@pytest.mark.parametrize("model", ["colorize_lab", "grey2rgb_mep"])
@pytest.mark.slow
def test_training_smoke_run(image_folder, tmp_path, model):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "train.colorize", "--model", model, "--iters", "5", "--batch-size", "2",
           "--patch", "64", "--val-count", "2", "--val-every", "5", "--threads", "1", "--run-dir", str(run_dir)]
    cmd += ["--calibrate-gain"] if model == "colorize_lab" else []
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=_env(image_folder.parent), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sidecar = json.loads((run_dir / "model.json").read_text())
    assert sidecar["iterations"] == 5 and sidecar["arch"] == get_spec(model).arch
    assert sidecar["loss"] == ("chroma" if model == "colorize_lab" else "mep")
    assert "val_psnr" in (run_dir / "metrics.csv").read_text().splitlines()[0]
    bad = subprocess.run([sys.executable, "-m", "train.colorize", "--model", "flashsr_x2"], cwd=PROJECT_ROOT,
                         env=_env(image_folder.parent), capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "train.sr" in bad.stderr


@pytest.mark.slow
def test_hint_training_keeps_the_hinted_mix_when_the_gain_rule_moves_the_gain(image_folder, tmp_path):
    """--hinted-weight trains the hinted output; --calibrate-gain then sets the automatic gain and rescales
    hinted_share so that gain * share (the network's say on hinted images) stays what training used."""
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "train.colorize", "--model", "colorize_hint_cls", "--iters", "4", "--batch-size", "2",
           "--patch", "64", "--val-count", "2", "--val-every", "4", "--threads", "1", "--run-dir", str(run_dir),
           "--hinted-weight", "40", "--hinted-share", "0.5", "--calibrate-gain"]
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=_env(image_folder.parent), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    args = json.loads((run_dir / "model.json").read_text())["args"]
    assert abs(args["chroma_gain"] * args["hinted_share"] - 0.5) < 1e-5  # trained at gain 1.0 (the spec's)
    # a soup of the run with itself keeps its args; re-running the gain rule on it (train.colorize_calibrate)
    # finds the same gain on the same held-out images, and --hinted-share sets the hint mix
    soup = [sys.executable, "-m", "train.soup", "--model", "colorize_hint_cls", "--tuned", str(run_dir / "model.safetensors"),
            "--base", str(run_dir / "model.safetensors"), "--alpha", "0.5", "--out-dir", str(tmp_path / "soup")]
    assert subprocess.run(soup, cwd=PROJECT_ROOT, env=_env(image_folder.parent), capture_output=True,
                          timeout=120).returncode == 0
    souped = tmp_path / "soup" / "colorize_hint_cls_alpha0.5.safetensors"
    assert json.loads(souped.with_suffix(".json").read_text())["args"] == args
    calibrate = [sys.executable, "-m", "train.colorize_calibrate", "--model", "colorize_hint_cls", "--weights",
                 str(souped), "--threads", "1", "--hinted-share", "0.2"]
    proc = subprocess.run(calibrate, cwd=PROJECT_ROOT, env=_env(image_folder.parent), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(souped.with_suffix(".json").read_text())
    assert info["args"] == {**args, "hinted_share": 0.2} and "val_psnr_hints" in info
    assert "train.colorize_calibrate" in info["lineage"][-1]
    bad = subprocess.run(calibrate[:-1] + ["1.5"], cwd=PROJECT_ROOT, env=_env(image_folder.parent),
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--hinted-share" in bad.stderr
    bad = subprocess.run(cmd[:3] + ["colorize_lab", "--hinted-weight", "1"], cwd=PROJECT_ROOT,
                         env=_env(image_folder.parent), capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--hinted-weight" in bad.stderr


def test_evaluation_json(tmp_path, rng, monkeypatch, capsys, random_weights):
    folder = tmp_path / "benchmark" / "Tiny"
    folder.mkdir(parents=True)
    for i in range(2):
        Image.fromarray((smooth_image(rng, 40, 56) * 255).astype(np.uint8)).save(folder / f"c{i}.png")
    Image.fromarray((rng.random((40, 56)) * 255).astype(np.uint8)).save(folder / "grey.png")
    monkeypatch.setenv("STSR_DATA", str(tmp_path))
    from evaluate.cli import main

    assert main(["--task", "colorize", "--model", "colorize_lab", "--weights", str(random_weights["colorize_lab"]),
                 "--sets", "Tiny", "--json"]) == 0
    assert main(["--task", "colorize", "--model", "grey", "--sets", "Tiny", "--json"]) == 0
    out = capsys.readouterr().out
    rows = [json.loads(chunk) for chunk in out.replace("]\n[", "]\n\n[").split("\n\n")]
    for row in (rows[0][0], rows[1][0]):
        assert {"model", "set", "psnr", "ssim", "colorfulness", "colorfulness_gt"} <= set(row)
        assert row["set"] == "Tiny" and row["images"] == 2 and row["skipped_grey"] == 1
    assert rows[1][0]["colorfulness"] < 1.0 < rows[1][0]["colorfulness_gt"]
    assert main(["--task", "colorize", "--model", "colorize_lab", "--weights", str(random_weights["colorize_lab"]),
                 "--sets", "Tiny", "--vividness", "2,1", "--json"]) == 0  # 1 is the default row, not repeated
    default, vivid = json.loads(capsys.readouterr().out)
    assert (default["model"], default["vividness"]) == ("colorize_lab", 1.0)
    assert (vivid["model"], vivid["vividness"]) == ("colorize_lab vividness 2", 2.0)
    assert vivid["colorfulness"] > 1.5 * default["colorfulness"] > 0


# ---------------------------------------------------------------- export

@pytest.mark.parametrize("name", ["colorize_lab", "grey2rgb_mse"])
def test_export_parity(tmp_path, random_weights, name):
    from export.onnx_export import export_onnx, read_onnx_record

    path = export_onnx(name, random_weights[name], tmp_path)
    record = read_onnx_record(path)
    inputs = ["grey", "vividness"] if name == "colorize_lab" else ["grey"]  # the colour-strength control
    assert [t["name"] for t in record["inputs"]] == inputs and [t["name"] for t in record["outputs"]] == ["rgb"]
    assert max(record["parity"]["max_abs_error"].values()) <= 1e-4


# ---------------------------------------------------------------- serving

def _colorize(image, random_weights, **kw):
    from serve.colorize import colorize

    return colorize(image, "colorize_lab", "torch-cpu", weights_path=str(random_weights["colorize_lab"]), **kw)


def test_serve_colour_input_is_made_grey(rng, random_weights):
    from serve.colorize import lightness

    colour = smooth_image(rng, 40, 48)
    result = _colorize(colour, random_weights)
    assert result.image.shape == (40, 48, 3) and result.info["converted_from_colour"]
    grey = np.repeat(lightness(colour)[..., None], 3, axis=2)
    assert not _colorize(grey, random_weights).info["converted_from_colour"]


def test_serve_alpha_and_sixteen_bit(tmp_path, rng, random_weights):
    rgba = np.concatenate([smooth_image(rng, 32, 40), rng.random((32, 40, 1), dtype=np.float32)], axis=2)
    result = _colorize(rgba, random_weights)
    assert result.image.shape == (32, 40, 4) and np.array_equal(result.image[..., 3], rgba[..., 3])
    path = tmp_path / "grey16.png"
    Image.fromarray((rng.random((36, 44)) * 65535).astype(np.uint16)).save(path)
    decoded = read_image(path)
    assert decoded.bit_depth == 16
    result = _colorize(decoded, random_weights)
    from serve.sr import save_image

    out = save_image(result, tmp_path / "out16.png")
    import cv2

    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_serve_downscaled_chroma_keeps_full_size(rng, random_weights):
    result = _colorize(smooth_image(rng, 150, 200), random_weights, chroma_max_side=64)
    assert result.image.shape == (150, 200, 3) and result.info["chroma_size"] == [64, 48]


@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 3), (0, 8)])
def test_serve_rejects_tiny_images(shape, random_weights):
    with pytest.raises(InputError, match="too small|empty"):
        _colorize(np.zeros(shape, np.float32), random_weights)


def test_serve_rejects_enormous_images(random_weights):
    with pytest.raises(InputError, match="over the colorization limit"):
        _colorize(np.zeros((64, 64), np.uint8), random_weights, max_input_pixels=1000)


def test_serve_cli(tmp_path, rng, random_weights, capsys):
    from serve.colorize import main

    src = tmp_path / "in.png"
    Image.fromarray((smooth_image(rng, 40, 40) * 255).astype(np.uint8)).save(src)
    assert main([str(src), "--out", str(tmp_path / "out.png"), "--backend", "torch-cpu", "--model", "colorize_lab",
                 "--weights", str(random_weights["colorize_lab"])]) == 0
    assert read_image(tmp_path / "out.png").rgb.shape == (40, 40, 3)
    assert "turned grey" in capsys.readouterr().out
    assert main([str(tmp_path / "missing.png"), "--out", str(tmp_path / "x.png")]) == 2


# ---------------------------------------------------------------- shipped weights

GREY_BASELINE_BSD68 = 22.51  # RGB PSNR of the grey input itself on BSD68 (README, evaluate --model grey)


def test_shipped_lab_model_meets_its_targets():
    """The published evaluation (sidecar metrics) beats grey and keeps at least half the truth's colour."""
    from models.checkpoint import read_sidecar

    spec = get_spec("colorize_lab")
    if not spec.has_weights():
        pytest.skip("colorize_lab has no shipped weights")
    bsd68 = read_sidecar(spec.weights_path).get("metrics", {}).get("BSD68")
    assert bsd68, "run python -m evaluate --task colorize --update-sidecar after publishing new weights"
    assert bsd68["psnr"] > GREY_BASELINE_BSD68
    assert bsd68["colorfulness"] >= 0.5 * bsd68["colorfulness_gt"]


def test_shipped_model_on_a_real_photo(shared_data):
    from serve.colorize import colorize, lightness

    if not get_spec("colorize_lab").has_weights():
        pytest.skip("colorize_lab has no shipped weights")
    photo = read_image(sorted((shared_data / "benchmark" / "BSD68").glob("*.png"))[0])
    result = colorize(photo, "colorize_lab", "torch-cpu")
    assert result.info["converted_from_colour"] and result.image.shape == photo.rgb.shape
    from common.metrics import colorfulness

    assert colorfulness(result.image) > 5.0  # colour came back
    assert np.abs(lightness(result.image) - lightness(photo.rgb)).mean() < 0.01  # structure kept
