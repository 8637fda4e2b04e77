"""Shared fixtures: tiny synthetic images, a scratch weights dir, the shared data root (skip if absent)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from common.paths import data_root

torch.set_num_threads(2)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def smooth_image(rng, h: int, w: int) -> np.ndarray:
    """A natural-ish float RGB image (low-pass noise plus edges), values in [0, 1]."""
    small = rng.random((max(2, h // 8), max(2, w // 8), 3)).astype(np.float32)
    img = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC), np.float32) / 255
    img[h // 3: h // 2, :, 0] = 0.9
    return np.clip(img, 0, 1)


def perturbed_hint_checkpoint(path, seed: int, args: dict):
    """A small hint colorizer (models.colorize_hint) with randomly perturbed weights, so its chroma is non-zero
    and hints matter, saved to `path` with checkpoint `args`; returns the path."""
    from models import save_checkpoint
    from models.colorize_hint import ColorizeHint

    torch.manual_seed(seed)
    model = ColorizeHint(**args)
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)
    save_checkpoint(path, model, arch="colorize_hint", args=dict(args))
    return path


@pytest.fixture
def image_folder(tmp_path, rng):
    """A folder of 8 small PNG/JPEG training images."""
    folder = tmp_path / "train"
    folder.mkdir()
    for i in range(8):
        arr = (smooth_image(rng, 72 + 4 * i, 80) * 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / (f"img_{i}.png" if i % 2 else f"img_{i}.jpg"))
    return folder


@pytest.fixture
def upload_dir():
    """A fresh folder inside Gradio's upload folder: the only place (besides examples/) endpoints read."""
    import shutil
    import tempfile
    from pathlib import Path

    from gradio.utils import get_upload_folder

    root = Path(get_upload_folder())
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="test-", dir=root))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def stop_video_job_at_frame_2():
    """f(source, target, model, backend): runs the video tab's upscale job on `source` (a file, or a list of
    frames written as a clip), presses Stop (JobCancelled from the progress callback) when frame 2 is
    reported and returns the frames reported; callers check that nothing was left at `target`."""
    return _stop_video_job_at_frame_2


def _stop_video_job_at_frame_2(source, target, model: str, backend: str) -> list:
    from serve.video import make_test_clip, probe
    from ui import video_tab
    from ui.cancel import JobCancelled

    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, list):  # frames: written as a clip beside the target's folder
        make_test_clip(target.parent.parent / "in.mp4", source)
        source = target.parent.parent / "in.mp4"

    seen = []

    def report(done, total):
        seen.append(done)
        if done == 2:
            raise JobCancelled("Stopped")

    with pytest.raises(JobCancelled):
        video_tab._upscale_video(str(source), target, probe(source), model, backend, report)
    return seen


@pytest.fixture
def shared_data():
    root = data_root()
    if not (root / "benchmark" / "Set5").is_dir():
        pytest.skip(f"shared benchmark data not found under {root} (set STSR_DATA)")
    return root


# --- the Gradio app, launched once per session on loopback (tests/test_app*.py, tests/test_bad_inputs.py) ---

def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def app_url():
    """URL of app.demo served in this process on 127.0.0.1 (a free port); closed at the end of the session."""
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import app

    app.demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=_free_port(), quiet=True,
                    **app.launch_kwargs())
    yield app.demo.local_url.rstrip("/")
    app.demo.close()


@pytest.fixture(scope="session")
def client(app_url, tmp_path_factory):
    from gradio_client import Client

    return Client(app_url, verbose=False, analytics_enabled=False,
                  download_files=str(tmp_path_factory.mktemp("client_downloads")))
