"""End-to-end tests of the Gradio app through gradio_client: every tab's named endpoint, real files in,
outputs checked (sizes, value ranges; SR beats bicubic on a Set5 image). One server per session
(tests/conftest.py: app_url, client); small inputs keep the whole file well under a minute on 2 cores.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from models import REGISTRY

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ENDPOINTS = ("/upscale", "/upscale_batch", "/colorize", "/colorize_video", "/uncertainty", "/interpolate", "/video",
             "/benchmark")


def load(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


def write_clip(path: Path, frames: int, fps: float, size=(64, 48)) -> Path:
    """A small real VP8 WebM: frames of the bundled example frame, panning."""
    base = np.asarray(Image.open(EXAMPLES / "frame_00010.jpg").convert("RGB").resize((size[0] * 2, size[1])))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), fps, size)
    for i in range(frames):
        shift = (i * 3) % size[0]
        writer.write(np.ascontiguousarray(base[:, shift:shift + size[0], ::-1]))
    writer.release()
    return path


def video_frames(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return frames, fps


def test_every_tab_has_a_named_endpoint(client):
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(ENDPOINTS) <= set(named), sorted(named)
    assert len(named) == len(ENDPOINTS), f"internal events leak into the API: {sorted(named)}"


def test_upscale_example_x2(client):
    src = EXAMPLES / "sr_car_lr.png"
    (before, after), download, summary, info = client.predict(handle_file(str(src)), "flashsr", 2, 256, "auto", False,
                                                              api_name="/upscale")
    lr = load(src)
    sr, bic = load(after), load(before)
    assert sr.shape == bic.shape == (lr.shape[0] * 2, lr.shape[1] * 2, 3)
    assert load(download).shape == sr.shape
    assert 0.02 < sr.std() and abs(sr.mean() - lr.mean()) < 0.03  # a real picture, same brightness
    assert info["input_size"] == [lr.shape[1], lr.shape[0]] and info["output_size"] == [sr.shape[1], sr.shape[0]]
    # auto says what it picked (ORT on CPU here) and why faster kinds were skipped
    assert "Backend" in summary and "auto →" in summary and info["selection"].startswith("flashsr_x2: using ")
    if "cuda" not in info["selection"] and "trt" not in info["selection"].split("using ")[1][:4]:
        assert info["provider"] == "CPUExecutionProvider"


def test_upscale_beats_bicubic_on_set5(client, shared_data):
    hr = shared_data / "benchmark" / "Set5" / "butterfly.png"
    if not hr.exists():
        pytest.skip(f"{hr} not found")
    _, _, summary, info = client.predict(handle_file(str(hr)), "flashsr", 4, 0, "onnx", True, api_name="/upscale")
    m = info["metrics"]
    assert m["psnr_y"] > m["bicubic_psnr_y"] + 1.0, m
    assert m["ssim_y"] > m["bicubic_ssim_y"], m
    assert "PSNR" in summary and "bicubic" in summary


SEED_SR_TRAINED = [(n, s) for n, s in REGISTRY.items() if s.task == "sr" and s.has_weights() and
                   not n.startswith("flashsr")]


@pytest.mark.parametrize("name,spec", SEED_SR_TRAINED, ids=[n for n, _ in SEED_SR_TRAINED])
def test_every_seed_model_is_in_the_picker_and_serves(client, name, spec):
    """The seed lineage is selectable in the SR tab and runs through ONNX Runtime; PSNR-trained
    models must beat bicubic on a real frame crop (GAN models may trade PSNR for texture)."""
    family = name.rsplit("_x", 1)[0]
    crop = np.asarray(Image.open(EXAMPLES / "hr_frame_crop.png").convert("RGB"))[:96, :128]
    _, _, _, info = client.predict(handle_file(str(_save_tmp(crop))), family, spec.scale, 0, "onnx", True,
                                   api_name="/upscale")
    m = info["metrics"]
    assert info["model"] == name and info["output_size"] == [128, 96], info
    if spec.adversarial:  # a GAN must at least add detail (the denoising VAEs may not)
        assert m["detail_ratio_y"] > m["bicubic_detail_ratio_y"], m
    else:
        assert m["psnr_y"] > m["bicubic_psnr_y"], m


def _save_tmp(arr) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="stsr-test-")) / "crop.png"
    Image.fromarray(arr).save(path)
    return path


def test_upscale_torch_matches_onnx_and_tiling(client):
    src = handle_file(str(EXAMPLES / "sr_tents_lr.png"))
    _, onnx_out, _, onnx_info = client.predict(src, "flashsr", 2, 0, "onnx", False, api_name="/upscale")
    _, torch_out, _, torch_info = client.predict(src, "flashsr", 2, 128, "torch", False, api_name="/upscale")
    assert onnx_info["backend"] == "onnx" and torch_info["backend"] == "torch" and torch_info["tiles"] > 1
    diff = np.abs(load(onnx_out) - load(torch_out))
    assert diff.max() <= 2 / 255, diff.max()  # 8-bit rounding apart, seamless tiles


def test_colorize_tab(client, app_url):
    from ui.colorize_tab import available_models

    src = handle_file(str(EXAMPLES / "colour_frame.png"))
    if not available_models():
        with pytest.raises(AppError, match="not available yet"):
            client.predict(src, None, "auto", api_name="/colorize")
        return
    (grey, colour), download, _, info = client.predict(src, available_models()[0], "auto", api_name="/colorize")
    g, c = load(grey), load(colour)
    assert g.shape == c.shape and np.allclose(g[..., 0], g[..., 1], atol=1 / 255)
    assert np.abs(c[..., 0] - c[..., 2]).mean() > 0.01  # some colour came back


def test_uncertainty_tab(client):
    from ui.uncertainty_tab import available_models

    src = handle_file(str(EXAMPLES / "sr_car_lr.png"))
    if not available_models():
        with pytest.raises(AppError, match="not available yet"):
            client.predict(src, None, 4, "mc", "auto", api_name="/uncertainty")
        return
    lr, one, mean, heat, bar, most, least, zip_path, summary, details = client.predict(
        src, "flashsr_x2", 4, "mc", "auto", api_name="/uncertainty")
    lr_a, one_a, mean_a, heat_a = load(lr), load(one), load(mean), load(heat)
    assert lr_a.shape == (64, 128, 3)  # 136x70 centre-cropped to whole 64-px patches
    assert one_a.shape == mean_a.shape == heat_a.shape == (128, 256, 3)
    assert np.abs(one_a - mean_a).mean() < 0.05 and heat_a.std() > 0
    assert load(bar).shape[0] > 50
    assert len(most) == len(least) == 2 and all(Path(item["image"]).exists() for item in most + least)
    assert details["passes"] == 4 and details["max_std"] >= details["mean_std"] > 0
    with zipfile.ZipFile(zip_path) as archive:
        assert len(archive.namelist()) >= 5
    assert "**passes** 4" in summary and "128×64 centre crop" in summary


def test_interpolate_tab(client):
    from ui.video_tab import interpolation_models

    a, b = (handle_file(str(EXAMPLES / f"frame_0001{i}.jpg")) for i in (0, 1))
    if not interpolation_models():
        with pytest.raises(AppError, match="not available yet"):
            client.predict(a, b, "×2", None, "auto", api_name="/interpolate")
        return
    frames, summary = client.predict(a, b, "×4", interpolation_models()[0], "auto", api_name="/interpolate")
    assert len(frames) == 3 and "alpha" not in summary
    assert all(load(f["image"]).shape == load(EXAMPLES / "frame_00010.jpg").shape for f in frames)
    rgba = np.asarray(Image.open(EXAMPLES / "frame_00010.jpg").convert("RGBA")).copy()
    rgba[..., 3] = 128
    _, summary = client.predict(handle_file(str(_save_tmp(rgba))), b, "×2", None, "auto", api_name="/interpolate")
    assert "transparency (alpha) was dropped" in summary  # said, not silently lost


def test_video_super_resolution(client, tmp_path):
    clip = write_clip(tmp_path / "pan.webm", frames=6, fps=12)
    video, summary, details = client.predict(handle_file(str(clip)), 1, "flashsr_x2", "auto", None,
                                             api_name="/video")
    frames, fps = video_frames(video)
    assert Path(video).suffix == ".mp4" and len(frames) == 6 and abs(fps - 12) < 0.5
    assert frames[0].shape == (96, 128, 3) and 20 < frames[3].mean() < 235
    assert details["size"] == [128, 96] and details["frames_out"] == 6 and "6 frames" in summary


def test_video_higher_frame_rate(client, tmp_path):
    from ui.video_tab import interpolation_models

    clip = handle_file(str(write_clip(tmp_path / "pan.webm", frames=4, fps=8)))
    if not interpolation_models():
        with pytest.raises(AppError, match="not available yet"):
            client.predict(clip, 2, "none", "auto", None, api_name="/video")
        return
    video, _, details = client.predict(clip, 2, "none", "auto", None, api_name="/video")
    frames, fps = video_frames(video)
    assert len(frames) == 8 and abs(fps - 16) < 0.5  # the last frame is held so the duration stays 0.5 s
    assert details["interpolation_model"] in interpolation_models()


def test_benchmark_tab(client):
    table, plot, rows = client.predict(["flashsr_x2"], ["onnx", "trt"], ["128"], 1, api_name="/benchmark")
    assert "flashsr_x2" in table and "onnx" in table
    assert len(rows) == 2
    done = [r for r in rows if not r["skipped"]]
    assert done and all(r["median_ms"] > 0 for r in done)
    assert Image.open(plot).size[0] > 200
    with pytest.raises(AppError, match="budget"):
        client.predict(["flashsr_x2", "flashsr_x4"], ["onnx", "torch"], ["128", "256", "512", "720p"], 20,
                       api_name="/benchmark")


def test_outputs_stay_in_the_temp_dir(client):
    from ui.common import work_root

    repo = Path(__file__).resolve().parent.parent
    assert not repo.joinpath("gradio_cached_examples").exists()
    assert work_root().is_dir() and not str(work_root()).startswith(str(repo))


def test_uncertainty_crop_fits_the_budget():
    from ui.uncertainty_tab import PATCH, fit_budget

    rgb = np.zeros((1000, 1500, 3), np.float32)
    crop = fit_budget(rgb, passes=40, budget=12_000_000)
    h, w = crop.shape[:2]
    assert h % PATCH == 0 and w % PATCH == 0 and h * w * 40 <= 12_000_000 and h * w >= 0.5 * 12_000_000 / 40
    assert fit_budget(rgb[:100, :100], passes=40, budget=12_000_000).shape == (100, 100, 3)  # small: untouched
    assert fit_budget(rgb, passes=128, budget=100).shape == (PATCH, PATCH, 3)  # never below one patch
