"""Stop buttons: a job flagged by its session's Stop stops at its next progress report and leaves no output."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from ui.cancel import JobCancelled, start_job, stop_jobs

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_stop_cancels_only_the_callers_jobs():
    mine, other = SimpleNamespace(session_hash="a"), SimpleNamespace(session_hash="b")
    with start_job(mine) as job, start_job(other) as theirs:
        job.check()
        stop_jobs(mine)
        with pytest.raises(JobCancelled):
            job.check()
        theirs.check()  # another session's job runs on


def test_a_stopped_video_leaves_no_file(tmp_path, upload_dir, stop_video_job_at_frame_2):
    seen = stop_video_job_at_frame_2(EXAMPLES / "clip_cdfi.webm", tmp_path / "out.mp4", "flashsr_x2", "onnx")
    assert seen == [1, 2] and not list(tmp_path.iterdir())


def test_a_stopped_upscale_stops_between_tiles(upload_dir):
    import numpy as np
    from PIL import Image

    from ui import sr_tab
    from ui.common import progress_callback

    job = start_job(None)
    job.cancelled.set()
    report = progress_callback(None, "upscaling", job)
    path = upload_dir / "photo.png"
    Image.fromarray(np.zeros((300, 300, 3), np.uint8)).save(path)
    decoded = sr_tab.load_image(str(path), max_pixels=10**7)
    with pytest.raises(JobCancelled):
        sr_tab.run_sr(decoded, "flashsr_x2", "onnx", 128, 0, report)
