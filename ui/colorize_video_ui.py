"""Video colorization in the colorization tab: a grey clip in, a colour MP4 out (serve.colorize_video).

The first frame (and every frame after a scene cut) is colorized, with optional hints [x, y, colour]
in the first frame's pixels; later frames carry the chroma along the interpolation model's flow, or
with "per frame" each frame is coloured on its own (flickers; for comparison). Frames stream from the
decoder to the encoder, so memory does not grow with the clip. The limits are the video tab's: clip
length and frame count (`limits().video_seconds`, `video_frames`), frame size (`sr_input_pixels`) and
the work budget `video_sr_pixels`, counted here as frames x min(frame pixels, FLOW_SIDE^2) since the
colorizer and the flow run at <= FLOW_SIDE px whatever the frame size. The audio track is re-encoded
into the MP4. Progress per frame; the Stop button ends the job within a frame and leaves no file.
"""
from __future__ import annotations

import itertools
import time
from typing import Optional

import gradio as gr

from common.images import to_uint8
from models.io import DEFAULT_VIVIDNESS

from .cancel import cancel_on, start_job, stop_button
from .common import (
    LONG_JOBS,
    checked_backend,
    limits,
    models_for,
    progress_callback,
    uploaded_video,
    user_errors,
    workdir,
)
from .inputs import checked_vividness, flag, one_of


@user_errors
def colorize_video(video, model: Optional[str] = None, hints: Optional[list] = None, per_frame: bool = False,
                   backend: str = "auto", vividness: Optional[float] = None, progress=gr.Progress(),
                   request: gr.Request = None):
    """Colorize a short grey (black-and-white) video with stable colours; a colour video is turned grey first.

    Args:
        video: the video file (MP4, WebM, MOV, MKV ...; short clips on the public Space).
        model: colorization model name; empty for the default (serve.colorize.DEFAULT_MODEL).
        hints: colour hints on the first frame for hint models: a list of [x, y, colour], x, y pixels of the
            first frame, colour "#rrggbb" or [r, g, b] in 0..255; at most 256; empty or null for automatic.
        per_frame: false (default): carry the colours along the motion; true: colour every frame on its own.
        backend: "auto", "onnx", "torch" or a specific kind such as "onnx-cpu".
        vividness: colour strength, 0 to 2.5: 1 (default, or null) = the model's calibrated colour, higher =
            more vivid, 0 = only the hints' colour (grey without hints); as /colorize's.

    Returns:
        The colour video (MP4), a summary and a dict of details.
    """
    from serve.colorize import DEFAULT_MODEL
    from serve.colorize_hints import check_hints

    try:
        from serve.colorize_video import FLOW_SIDE, colorize_stream, iter_frames
    except ImportError:  # the lean (ONNX-only) install: the flow that carries colours runs in PyTorch
        raise gr.Error("Video colorization needs PyTorch (it carries colours along the interpolation model's "
                       "flow), which this installation does not have.") from None
    from serve.video_io import Mp4Writer, audio_format

    models = [spec.name for spec in models_for("colorize")]
    if not models:
        raise gr.Error("Colorization is not available yet: no colorization model has been trained.")
    model = one_of(model, "model", models, default=DEFAULT_MODEL if DEFAULT_MODEL in models else models[0])
    per_frame = flag(per_frame, "per_frame")
    backend = checked_backend(backend)
    vividness = checked_vividness(vividness)
    path, name, info = uploaded_video(video, progress)
    lim = limits()
    work = info.frames * min(info.width * info.height, FLOW_SIDE ** 2)
    if work > lim.video_sr_pixels:
        raise gr.Error(f"{name}: colorizing {info.frames} frames of {info.width}x{info.height} is {work / 1e6:.1f} MP "
                       f"at the model's working size (<= {FLOW_SIDE} px), over this machine's limit of "
                       f"{lim.video_sr_pixels / 1e6:.0f} MP; use a shorter clip.")
    checked = check_hints(hints, info.width, info.height)  # a clear message before any frame is decoded
    stem = name.rsplit(".", 1)[0][:60] or "video"
    folder = workdir("colorize_video")
    target = folder / f"{stem}_{model}{'_per_frame' if per_frame else ''}.mp4"
    partial = folder / f".{target.name}.part"
    details: dict = {}
    started = time.perf_counter()
    with start_job(request) as running:
        report = progress_callback(progress, "colorizing frames", running, unit="frames")
        writer = Mp4Writer(partial, info.fps, info.width, info.height, audio=audio_format(path))
        try:
            for frame in colorize_stream(itertools.islice(iter_frames(path), lim.video_frames), hints, model,
                                         backend, per_frame, info=details, progress=report, total=info.frames,
                                         vividness=vividness):
                writer.write(to_uint8(frame))
            writer.finish_video()
            audio = writer.copy_audio(path)
            writer.close()
        except BaseException:
            writer.close()
            partial.unlink(missing_ok=True)
            raise
        partial.rename(target)
    seconds = time.perf_counter() - started
    details.update({"input": info.describe(), "audio": audio, "seconds": round(seconds, 2)})
    keyframes = details.get("keyframes", [])
    text = (f"**{model}**: {details.get('frames')} frames ({info.width}×{info.height}) coloured "
            + ("each on its own" if per_frame else f"from {len(keyframes)} keyframe(s) (first frame and scene cuts), "
               "colours carried along the motion")
            + f" in {seconds:.1f} s; flicker {details.get('flicker', 0):.3f} (mean |Δab| after motion)"
            + (f"; {len(checked)} hint(s) on the first frame" if checked else "")
            + (f"; vividness {details['vividness']:g}"
               if details.get("vividness") not in (None, DEFAULT_VIVIDNESS) else "")
            + f"; audio {'kept' if audio else 'none'}.")
    return str(target), text, details


def build(model: gr.Dropdown, backend: gr.Dropdown, photo_hints: gr.JSON, vividness: gr.Slider) -> None:
    """The video section, sharing the tab's model, backend and vividness controls."""
    lim = limits()
    gr.Markdown(f"### Video → colour video\nClips up to {lim.video_seconds:g} s and {lim.video_frames} frames. "
                "The first frame and each scene cut are colorized; the other frames carry those colours along "
                "the motion (steadier than colouring each frame on its own). Hints apply to the first frame: "
                "upload the clip's first frame as the photo above, place hints there, then copy them here.")
    with gr.Row():
        with gr.Column():
            video = gr.Video(label="Grey or colour video (colour is turned grey first)", sources=["upload"],
                             height=240, elem_id="colorize-video-input")
            per_frame = gr.Checkbox(False, label="Colour every frame on its own (flickers; for comparison)")
            hints = gr.JSON(value=[], label="Hints on the first frame [x, y, colour] (empty = automatic)",
                            elem_id="colorize-video-hints")
            with gr.Row():
                copy = gr.Button("Copy the photo's hints", size="sm")
                run = gr.Button("Colorize video", variant="primary", elem_id="colorize-video-run")
                stop = stop_button()
        with gr.Column():
            out = gr.Video(label="Colour video", interactive=False, elem_id="colorize-video-output")
            summary = gr.Markdown(label="Summary", elem_id="colorize-video-summary")
            with gr.Accordion("Details", open=False):
                details = gr.JSON(label="Details")
    copy.click(lambda h: list(h or []), [photo_hints], [hints], api_visibility="private", queue=False)
    event = run.click(colorize_video, [video, model, hints, per_frame, backend, vividness], [out, summary, details],
                      api_name="colorize_video", concurrency_id=LONG_JOBS, concurrency_limit=1, preprocess=False)
    cancel_on(stop, event)
