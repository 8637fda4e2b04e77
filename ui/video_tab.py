"""Frame interpolation tab: two frames -> in-between frame(s), and a video -> higher frame rate and/or SR.

Calls serve.interpolate (interpolate_pair, interpolate_video) and serve.video (PyAV: checked probing,
streamed decoding, H.264 MP4 with the audio kept). Interpolation runs when a model with task
'interpolate' has weights; until then the two-frame part says "not available yet" and the video part
refuses 2x/4x with that message, while 1x (super-resolution of every frame of a short clip, the seed
002 use) works with the shipped FlashSR weights.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, List, Optional

import gradio as gr

from models import get_spec

from .common import (NOT_AVAILABLE, backend_choices, checked_backend, example_path, image_upload, limits, load_image, models_for,
                     pipeline, progress_callback, save_png, uploaded, user_errors, workdir)
from .cancel import cancel_on, start_job, stop_button
from .inputs import one_of, whole_number

FACTORS = {"×2": 2, "×4": 4}
NO_SR = "none"


def interpolator() -> Optional[Callable]:
    return pipeline("interpolate", "interpolate", "interpolate_pair")[0]


def interpolation_models() -> List[str]:
    return pipeline("interpolate", "interpolate", "interpolate_pair")[1]


def _factor(value, name: str, allowed=(1, 2, 4)) -> int:
    """'×2' (the radio's label), 2 or '2' (what view_api shows) -> 2."""
    return whole_number(FACTORS.get(value, value) if isinstance(value, str) else value, name, 1, 4,
                        allowed=allowed)


def _require_interpolation(model: Optional[str]) -> str:
    models = interpolation_models()
    if not models:
        raise gr.Error("Frame interpolation is not available yet: no interpolation model has been trained. "
                       "Use 1× frame rate to only upscale the video's frames.")
    return one_of(model, "interpolation model", models, default=models[0])


@user_errors
def interpolate_frames(frame0, frame1, factor: str = "×2", model: Optional[str] = None, backend: str = "auto"):
    """Make the in-between frames of two consecutive video frames.

    Args:
        frame0: the first frame.
        frame1: the second frame, the same size as the first.
        factor: "×2" (one frame between) or "×4" (three); 2 and 4 are accepted too.
        model: interpolation model name; empty for the default ("flowinterp").
        backend: "auto", "onnx", "torch" or a specific kind such as "onnx-cpu".

    Returns:
        A gallery of the in-between frames and a summary.
    """
    model = _require_interpolation(model)
    count = _factor(factor, "factor", allowed=(2, 4)) - 1
    backend = checked_backend(backend)
    lim = limits()
    a = load_image(frame0, max_pixels=lim.sr_input_pixels, what="first frame")
    b = load_image(frame1, max_pixels=lim.sr_input_pixels, what="second frame")
    if a.rgb.shape != b.rgb.shape:
        raise gr.Error(f"The frames differ in size ({a.width}x{a.height} and {b.width}x{b.height}).")
    started = time.perf_counter()
    middles = interpolator()(a, b, model, factor=count + 1, backend=backend)
    out = workdir("interpolate")
    items = [(save_png(f, out / f"middle_{i + 1}_of_{count}.png"), f"t = {(i + 1) / (count + 1):.2f}")
             for i, f in enumerate(middles)]
    return items, f"**{model}**: {count} frame(s) in {time.perf_counter() - started:.2f} s."


def _upscale_video(path: str, target, info, sr_model: str, backend: str, report: Callable[[int, int], None]) -> dict:
    """Every frame through serve.upscale into an H.264 MP4 at the same frame rate, audio kept."""
    from serve import upscale
    from serve.video import Mp4Writer, audio_format, read_frames

    lim = limits()
    scale, last = get_spec(sr_model).scale, {}
    audio = audio_format(path) if info.has_audio else None
    partial = Path(target).with_suffix(".partial.mp4")  # renamed on success: a stop leaves nothing behind
    writer = Mp4Writer(partial, info.fps, info.width * scale, info.height * scale, audio=audio)
    try:
        try:
            for index, frame in enumerate(read_frames(path)):
                result = upscale(frame, sr_model, backend, tile=256, max_input_pixels=lim.sr_input_pixels,
                                 max_output_pixels=lim.sr_output_pixels)
                writer.write(result.image[..., :3])
                last = result.info
                if report is not None:
                    report(index + 1, info.frames)
            writer.finish_video()
            audio_kept = writer.copy_audio(path) if audio else False
        finally:
            writer.close()
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return {"frames_out": writer.frames, "fps_out": float(info.fps), "size": list(writer.written_size),
            "audio": audio_kept, "codec": "h264 in MP4", "backend": {k: last.get(k) for k in ("backend", "provider")}}


@user_errors
def process_video(video, fps_factor="1", sr_model: str = NO_SR, backend: str = "auto",
                  interp_model: Optional[str] = None, progress=gr.Progress(), request: gr.Request = None):
    """Raise a short video's frame rate (frame interpolation) and/or super-resolve its frames.

    Args:
        video: the video file (MP4, WebM, MOV, MKV ...; short clips on the public Space).
        fps_factor: 1 (keep the frame rate), 2 or 4.
        sr_model: an SR model name such as "flashsr_x2" to upscale every frame, or "none".
        backend: "auto", "onnx", "torch" or a specific kind such as "onnx-cpu".
        interp_model: interpolation model name; empty for the default ("flowinterp").

    Returns:
        The processed video (H.264 MP4), a summary and a dict of details.
    """
    from serve.video import probe

    factor = _factor(fps_factor, "fps_factor")
    sr_model = one_of(sr_model, "sr_model", [NO_SR] + [s.name for s in models_for("sr")], default=NO_SR)
    backend = checked_backend(backend)
    if factor == 1 and sr_model == NO_SR:
        raise gr.Error("Nothing to do: choose an SR model, or a 2× / 4× frame rate.")
    if factor > 1 or interp_model not in (None, ""):
        interp_model = _require_interpolation(interp_model)
    path, name = uploaded(video, "video")
    if isinstance(path, bytes):
        raise gr.Error("The video must be uploaded as a file.")
    lim = limits()
    progress(0, desc="checking the video")
    info = probe(path, max_seconds=lim.video_seconds, max_frames=lim.video_frames, max_frame_pixels=lim.sr_input_pixels)
    if sr_model != NO_SR:
        work = info.frames * factor * info.width * info.height
        if work > lim.video_sr_pixels:
            raise gr.Error(f"{name}: upscaling {info.frames * factor} frames of {info.width}x{info.height} is "
                           f"{work / 1e6:.1f} MP of input, over this machine's limit of "
                           f"{lim.video_sr_pixels / 1e6:.0f} MP; use a shorter or smaller clip.")
    stem = name.rsplit(".", 1)[0][:60] or "video"
    target = workdir("video") / f"{stem}_{factor}x_fps{'' if sr_model == NO_SR else '_' + sr_model}.mp4"

    started = time.perf_counter()
    with start_job(request) as job:
        report = progress_callback(progress, "frames", job, unit="frames")
        if factor > 1:
            from serve.interpolate import interpolate_video

            result = interpolate_video(path, target, factor, interp_model, backend=backend,
                                       max_seconds=lim.video_seconds, max_frames=lim.video_frames,
                                       sr_model=None if sr_model == NO_SR else sr_model, progress=report)
        else:
            result = _upscale_video(path, target, info, sr_model, backend, report)
    seconds = time.perf_counter() - started
    details = {"input": info.describe(), **{k: v for k, v in result.items() if k not in ("input", "output")},
               "sr_model": None if sr_model == NO_SR else sr_model,
               "interpolation_model": interp_model if factor > 1 else None, "seconds": round(seconds, 2)}
    size = result.get("size", [info.width, info.height])
    scale = 1 if sr_model == NO_SR else get_spec(sr_model).scale
    padded = list(size) != [info.width * scale, info.height * scale]
    text = (f"{info.frames} frames at {float(info.fps):.2f} fps ({info.width}×{info.height}) → "
            f"{result.get('frames_out')} frames at {float(info.fps) * factor:.2f} fps ({size[0]}×{size[1]}"
            f"{', odd sides padded by 1 px for H.264' if padded else ''}) "
            f"in {seconds:.1f} s; audio {'kept' if result.get('audio') else 'none'}.")
    return str(target), text, details


def build() -> None:
    interp = interpolation_models()
    lim = limits()
    sr_names = [s.name for s in models_for("sr")]
    gr.Markdown("### Two frames → the frame(s) between them")
    if not interp:
        gr.Markdown(NOT_AVAILABLE.format(what="no frame-interpolation model has been trained yet",
                                         task="frame-interpolation"),
                    elem_id="interpolate-note")
    with gr.Row():
        frame0 = image_upload("Frame 1", height=220, elem_id="frame0")
        frame1 = image_upload("Frame 2", height=220, elem_id="frame1")
        with gr.Column():
            factor = gr.Radio(list(FACTORS), value="×2", label="Frame rate")
            interp_model = gr.Dropdown(interp, value=interp[0] if interp else None, label="Model",
                                       interactive=bool(interp))
            backend_i = gr.Dropdown(backend_choices(), value="auto", label="Backend")
            run_pair = gr.Button("Interpolate", variant="primary", interactive=bool(interp), elem_id="interpolate-run")
    middles = gr.Gallery(label="In-between frames", columns=3, height=240, elem_id="middles")
    pair_info = gr.Markdown(label="Summary")
    pair = [p for p in (example_path("frame_00010.jpg"), example_path("frame_00011.jpg"))]
    if all(pair):
        gr.Examples([pair], [frame0, frame1], cache_examples=False)
    run_pair.click(interpolate_frames, [frame0, frame1, factor, interp_model, backend_i], [middles, pair_info],
                   api_name="interpolate", concurrency_id="compute", preprocess=False)

    gr.Markdown(f"### Video → higher frame rate and/or super-resolved frames\nClips up to {lim.video_seconds:g} s "
                f"and {lim.video_frames} frames; upscaling up to {lim.video_sr_pixels / 1e6:.0f} MP of input frames "
                "in all on this machine. The output is an H.264 MP4; audio is kept.")
    fps_choices = [("1× (keep)", "1"), ("2×", "2"), ("4×", "4")]  # strings: the API/MCP schema says string
    with gr.Row():
        with gr.Column():
            video = gr.Video(label="Video", sources=["upload"], height=260, elem_id="video-input")
            with gr.Row():
                fps = gr.Radio(fps_choices, value="1",
                               label="Frame rate" + ("" if interp else " (2× and 4× are not available yet)"))
                sr = gr.Dropdown([NO_SR] + sr_names, value=sr_names[0] if sr_names else NO_SR,
                                 label="Super-resolve frames with")
                backend_v = gr.Dropdown(backend_choices(), value="auto", label="Backend")
            with gr.Row():
                run_video = gr.Button("Process video", variant="primary", elem_id="video-run")
                stop_video = stop_button()
        with gr.Column():
            video_out = gr.Video(label="Result", interactive=False, elem_id="video-output")
            video_info = gr.Markdown(label="Summary", elem_id="video-summary")
            with gr.Accordion("Details", open=False):
                video_details = gr.JSON(label="Details")
    clip = example_path("clip_cdfi.webm")
    if clip:
        gr.Examples([[clip]], [video], cache_examples=False)
    event = run_video.click(process_video, [video, fps, sr, backend_v, interp_model],
                            [video_out, video_info, video_details], api_name="video", concurrency_id="video",
                            concurrency_limit=1, preprocess=False)
    cancel_on(stop_video, event)
