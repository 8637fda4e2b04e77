"""train.gan (adversarial fine-tuning) and the VAE's KL term in train.sr, on tiny synthetic data."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from train.gan import feature_matching, total_variation

ROOT = Path(__file__).resolve().parent.parent


def _run(module, args, env, ok=True):
    out = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert (out.returncode == 0) == ok, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    return out


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_total_variation_and_feature_matching():
    flat = torch.full((1, 3, 8, 8), 0.5)
    stripes = flat.clone()
    stripes[..., ::2, :] = 1.0
    assert total_variation(flat).item() == 0 and total_variation(stripes).item() == pytest.approx(0.5)
    feats = [torch.rand(1, 4, 5, 5, requires_grad=True), torch.rand(1, 8, 3, 3, requires_grad=True)]
    assert feature_matching(feats, [f.detach() for f in feats]).item() == 0
    loss = feature_matching(feats, [torch.zeros_like(f) for f in feats])
    loss.backward()
    assert loss.item() > 0 and feats[0].grad is not None


@pytest.mark.slow
def test_gan_run_logs_every_loss_checkpoints_both_networks_and_resumes(image_folder, tmp_path):
    env = {**os.environ, "STSR_DATA": str(tmp_path / "none")}
    run_dir = tmp_path / "gan"
    common = ["--model", "swift_srgan_x2", "--data", str(image_folder), "--batch-size", "2", "--patch", "12",
              "--val-count", "2", "--val-every", "2", "--save-every", "2", "--pixel-warmup", "1", "--threads", "1",
              "--run-dir", str(run_dir)]
    _run("train.gan", [*common, "--iters", "4"], env)
    rows = _rows(run_dir / "metrics.csv")
    assert [r["step"] for r in rows] == ["2", "4"]
    for key in ("pixel", "adversarial", "tv", "feature", "loss_g", "loss_d", "d_real", "d_fake", "val_psnr_y"):
        assert rows[-1][key] != "", key
    info = json.loads((run_dir / "model.json").read_text())
    assert info["arch"] == "swift_srgan" and info["adversarial"] and info["iterations"] == 4
    assert "feature_matching" in info["losses"]
    d_info = json.loads((run_dir / "discriminator.json").read_text())
    assert d_info["arch"] == "SwiftSRGANDiscriminator"
    resumed = _run("train.gan", [*common, "--iters", "6"], env)
    assert "resuming" in resumed.stderr
    assert json.loads((run_dir / "model.json").read_text())["iterations"] == 6


@pytest.mark.slow
def test_vae_training_logs_kl_and_records_its_weight(image_folder, tmp_path):
    env = {**os.environ, "STSR_DATA": str(tmp_path / "none")}
    run_dir = tmp_path / "vae"
    _run("train.sr", ["--model", "vae_res_x2", "--data", str(image_folder), "--batch-size", "2", "--patch", "32",
                      "--iters", "4", "--val-count", "2", "--val-every", "2", "--kl-weight", "0.01",
                      "--kl-warmup", "0.5", "--threads", "1", "--workers", "0", "--run-dir", str(run_dir)], env)
    rows = _rows(run_dir / "metrics.csv")
    assert float(rows[0]["kl"]) >= 0 and 0 < float(rows[0]["kl_weight"]) <= 0.01
    assert float(rows[-1]["kl_weight"]) == pytest.approx(0.01)
    info = json.loads((run_dir / "model.json").read_text())
    assert info["vae"]["kl_weight"] == 0.01 and info["args"]["residual"] is True


@pytest.mark.slow
def test_nonsense_flags_stop_at_once(tmp_path):
    env = {**os.environ, "STSR_DATA": str(tmp_path / "missing")}
    cases = [
        ("train.sr", ["--model", "srgan", "--scale", "3"], "no x3 variant"),
        ("train.sr", ["--model", "swift_srgan_psnr_x4", "--scale", "2"], "--scale 2 does not apply"),
        ("train.sr", ["--model", "vae_x2", "--patch", "16"], "receptive field"),
        ("train.sr", ["--model", "esrcnn_x2", "--patch", "64"], "data folder not found"),
        ("train.gan", ["--model", "flashsr_x4"], "not a GAN model"),
        ("train.gan", ["--model", "srgan_x4", "--patch", "8"], "receptive field"),
        ("train.gan", ["--model", "swift_srgan_x4", "--init-from", str(tmp_path / "nope.safetensors")], "does not exist"),
        ("train.gan", ["--model", "swift_srgan_x2"], "data folder not found"),
    ]
    for module, args, message in cases:
        out = subprocess.run([sys.executable, "-m", module, *args, "--iters", "1"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode != 0 and message in out.stderr, (module, args, out.stderr[-500:])
        assert "Traceback" not in out.stderr


def test_unet_discriminator_scores_every_pixel_with_spectral_norm():
    from models.unet_discriminator import UNetDiscriminator

    d = UNetDiscriminator(channels=8)
    x = torch.rand(2, 3, 32, 48, requires_grad=True)
    logits, feats = d(x)
    assert logits.shape == (2, 1, 32, 48) and len(feats) == 7
    assert all(f.shape[0] == 2 for f in feats)
    logits.mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    sn = [m for m in d.modules() if hasattr(m, "weight_orig")]
    assert len(sn) == 8  # every conv but the stem and the head is spectrally normalised


@pytest.mark.slow
def test_real_photo_gan_trains_on_real_degradations_with_a_strength(image_folder, tmp_path):
    env = {**os.environ, "STSR_DATA": str(tmp_path / "none")}
    run_dir = tmp_path / "real_gan"
    _run("train.gan", ["--model", "flashsr_real_gan_x4", "--data", str(image_folder), "--batch-size", "2",
                       "--patch", "16", "--val-count", "2", "--val-every", "2", "--iters", "2", "--threads", "1",
                       "--degradation", "real", "--d-channels", "8", "--workers", "0", "--run-dir", str(run_dir)], env)
    rows = _rows(run_dir / "metrics.csv")
    assert float(rows[-1]["loss_d"]) > 0 and rows[-1]["val_psnr_y"] != ""
    info = json.loads((run_dir / "model.json").read_text())
    assert info["args"]["strength"] is True and info["data"]["degradation"] == "real"
    assert info["data"]["val_degradation"] == "auto" and info["adversarial"]
    assert json.loads((run_dir / "discriminator.json").read_text())["arch"] == "UNetDiscriminator"
