"""Video colorization in the app: /colorize_video through gradio_client on a tiny clip, hints on the
first frame, the per-frame option, the work limit, and Stop leaving no file behind."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from test_app import write_clip

    return write_clip(tmp_path_factory.mktemp("clips") / "pan.webm", frames=5, fps=10)


@pytest.fixture(autouse=True)
def needs_a_colorizer():
    from ui.colorize_tab import available_models

    if "colorize_hint_cls" not in available_models():
        pytest.skip("colorize_hint_cls has no weights")


def test_colorize_video_endpoint_colours_a_clip_with_hints(client, clip):
    from test_app import video_frames

    video, summary, details = client.predict(handle_file(str(clip)), "colorize_hint_cls", [[20, 24, "#ff2020"]],
                                             False, "auto", api_name="/colorize_video")
    frames, fps = video_frames(video)
    assert Path(video).suffix == ".mp4" and len(frames) == 5 and abs(fps - 10) < 0.5
    assert frames[0].shape == (48, 64, 3)
    assert details["mode"] == "propagated" and details["keyframes"][0] == 0 and details["hints"] == 1
    assert details["flicker"] >= 0 and "5 frames" in summary and "1 hint(s)" in summary
    per_video, _, per = client.predict(handle_file(str(clip)), "colorize_hint_cls", [], True, "auto",
                                       api_name="/colorize_video")
    assert per["mode"] == "per-frame" and per["hints"] == 0 and per["vividness"] == 1.0
    auto, _ = video_frames(per_video)

    def redness(frame):  # BGR from OpenCV, around the hint
        patch = frame[21:28, 17:24].astype(float)
        return (patch[..., 2] - patch[..., 0]).mean()

    assert redness(frames[0]) > redness(auto[0]) + 8, (redness(frames[0]), redness(auto[0]))


def test_colorize_video_refuses_bad_arguments_clearly(client, clip):
    for args, message in ((("colorize_hint_cls", [[500, 0, "#ff0000"]], False, "auto"), "outside the 64x48"),
                          (("colorize_hint_cls", [], "yes", "auto"), "'per_frame' must be true or false"),
                          (("nope", [], False, "auto"), "model"),
                          (("colorize_hint_cls", [], False, "auto", 9), "'vividness' must be from 0 to 2.5")):
        with pytest.raises(AppError, match=message):
            client.predict(handle_file(str(clip)), *args, api_name="/colorize_video")


def test_colorize_video_takes_vividness(client, clip):
    from test_app import video_frames

    runs = {v: client.predict(handle_file(str(clip)), "colorize_hint_cls", [], False, "auto", v,
                              api_name="/colorize_video") for v in (0.0, 2.0)}
    assert runs[2.0][2]["vividness"] == 2.0 and "vividness 2" in runs[2.0][1]
    grey, vivid = (video_frames(runs[v][0])[0][0].astype(float) for v in (0.0, 2.0))
    spread = lambda f: (f.max(axis=2) - f.min(axis=2)).mean()  # noqa: E731  (chroma of a BGR frame)
    assert spread(grey) < 3 < spread(vivid), (spread(grey), spread(vivid))


def _upload(clip, upload_dir) -> dict:
    target = upload_dir / clip.name
    shutil.copy(clip, target)
    return {"video": {"path": str(target), "orig_name": clip.name}, "subtitles": None}


def test_the_work_limit_and_stop_leave_nothing_behind(clip, upload_dir, tmp_path, monkeypatch):
    import dataclasses

    import gradio as gr

    from ui import colorize_video_ui
    from ui.cancel import JobCancelled
    from ui.common import limits

    monkeypatch.setattr(colorize_video_ui, "workdir", lambda prefix: tmp_path)
    small = dataclasses.replace(limits(), video_sr_pixels=4 * 64 * 48)
    monkeypatch.setattr(colorize_video_ui, "limits", lambda: small)
    with pytest.raises(gr.Error, match="over this machine's limit"):
        colorize_video_ui.colorize_video(_upload(clip, upload_dir), "colorize_hint_cls", progress=lambda *a, **k: None)
    monkeypatch.setattr(colorize_video_ui, "limits", lambda: dataclasses.replace(small, video_sr_pixels=10 ** 9))
    calls = []

    def stop_at_frame_two(value, desc=None, unit=None):
        calls.append(value)
        if isinstance(value, tuple) and value[0] >= 2:
            raise JobCancelled("Stopped: the job was cancelled from the page; nothing was written.")

    with pytest.raises(gr.Error, match="Stopped"):
        colorize_video_ui.colorize_video(_upload(clip, upload_dir), "colorize_hint_cls", progress=stop_at_frame_two)
    assert (1, 5) in calls and not list(tmp_path.iterdir())  # no partial and no finished file
    out, _, details = colorize_video_ui.colorize_video(_upload(clip, upload_dir), "colorize_hint_cls",
                                                       progress=lambda *a, **k: None)
    assert Path(out).parent == tmp_path and details["frames"] == 5 and [p.name for p in tmp_path.iterdir()] == [
        Path(out).name]
    assert np.isfinite(details["flicker"])
