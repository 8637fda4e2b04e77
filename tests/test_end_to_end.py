"""Train a few steps on tiny synthetic images -> checkpoint -> reload -> evaluate -> ONNX export -> serve."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.images import read_image

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _run(args, env, timeout=300):
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.fixture
def synthetic_root(tmp_path, image_folder):
    """A STSR_DATA-shaped root: train/ (the fixture's images) and benchmark/Tiny (two held-out images)."""
    root = tmp_path / "data"
    root.mkdir()
    image_folder.rename(root / "train")
    bench = root / "benchmark" / "Tiny"
    bench.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for i in range(2):
        from tests.conftest import smooth_image
        Image.fromarray((smooth_image(rng, 48, 56) * 255).astype(np.uint8)).save(bench / f"t{i}.png")
    (bench / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # evaluate must name it and go on
    return root


def test_train_save_reload_evaluate_export_serve(synthetic_root, tmp_path):
    env = {**os.environ, "STSR_DATA": str(synthetic_root), "STSR_CACHE": str(tmp_path / "cache")}
    run_dir = tmp_path / "run"
    common = ["-m", "train.sr", "--model", "flashsr", "--scale", "2", "--batch-size", "2", "--patch", "16",
              "--val-every", "10", "--save-every", "10", "--val-count", "2", "--run-dir", str(run_dir)]
    _run([*common, "--iters", "12"], env)
    metrics = (run_dir / "metrics.csv").read_text().splitlines()
    assert metrics[0].startswith("step,loss,lr,val_psnr_y") and len(metrics) == 3  # steps 10 and 12
    info = json.loads((run_dir / "model.json").read_text())
    assert info["iterations"] == 12 and info["arch"] == "flashsr" and info["data"]["train_images"] == 6

    resumed = _run([*common, "--iters", "20"], env)  # resumes at step 12, runs to 20
    assert "resuming" in resumed.stderr
    assert json.loads((run_dir / "model.json").read_text())["iterations"] == 20

    weights = run_dir / "model.safetensors"
    out = _run(["-m", "evaluate", "--model", "flashsr_x2,bicubic", "--scale", "2", "--sets", "Tiny",
                "--weights", str(weights), "--json"], env)
    rows = json.loads(out.stdout)
    assert "broken.png" in out.stderr and "Traceback" not in out.stderr
    assert {(r["model"], r["set"]) for r in rows} == {("flashsr_x2", "Tiny"), ("bicubic", "Tiny")}
    for r in rows:
        assert set(r) >= {"model", "set", "scale", "psnr_y", "ssim_y", "seconds"} and 10 < r["psnr_y"] < 60
        assert r["images"] == 2

    # Export and serve the fresh checkpoint through ONNX Runtime; torch must agree.
    os.environ["STSR_CACHE"] = env["STSR_CACHE"]
    from serve import clear_cache, upscale
    try:
        img = read_image(synthetic_root / "benchmark" / "Tiny" / "t0.png")
        via_onnx = upscale(img, "flashsr_x2", backend="onnx", weights_path=str(weights), tile=0)
        via_torch = upscale(img, "flashsr_x2", backend="torch", weights_path=str(weights), tile=0)
    finally:
        clear_cache()
        os.environ.pop("STSR_CACHE")
    assert via_onnx.image.shape == (96, 112, 3)
    assert np.abs(via_onnx.image - via_torch.image).max() < 1e-4
    assert list((tmp_path / "cache" / "onnx").rglob("*.onnx"))


def test_bad_training_flags_stop_at_once(tmp_path):
    env = {**os.environ, "STSR_DATA": str(tmp_path / "missing")}
    for args, message in [
        (["--model", "flashsr", "--scale", "3"], "no x3 variant"),
        (["--model", "flashsr_x4", "--scale", "2"], "--scale 2 does not apply"),
        (["--model", "flashsr", "--scale", "2", "--patch", "4"], "receptive field"),
        (["--model", "flashsr", "--scale", "2"], "data folder not found"),
        (["--model", "srcnn9000"], "unknown model"),
    ]:
        out = subprocess.run([sys.executable, "-m", "train.sr", *args, "--iters", "1"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode != 0 and message in out.stderr, (args, out.stderr[-500:])
        assert "Traceback" not in out.stderr
