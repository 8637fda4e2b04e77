"""Frame interpolation tab: two frames -> in-between frame(s), and a video -> higher frame rate and/or SR.

Calls serve.interpolate (interpolate_pair) and serve.video_job (PyAV: checked probing, streamed
decoding, any target frame rate, H.264/H.265/VP9/AV1 in MP4 with every audio and subtitle stream
kept, copied where MP4 allows). Interpolation runs when a model with task
'interpolate' has weights; until then the two-frame part says "not available yet" and the video part
refuses 2x/4x with that message, while 1x (super-resolution of every frame of a short clip, the seed
002 use) works with the shipped FlashSR weights.
"""
from __future__ import annotations

import time
from typing import Callable, List, Optional

import gradio as gr

from models import REGISTRY, get_spec
from serve.vsr_fusion import MAX_OUTPUT_PIXELS as FUSION_MAX_OUTPUT_PIXELS
from serve.vsr_fusion import OFFERED, SUFFIX, split_name, sr_scale

from .cancel import cancel_on, start_job, stop_button
from .common import (
    LONG_JOBS,
    NOT_AVAILABLE,
    backend_choices,
    checked_backend,
    checked_precision,
    example_path,
    image_upload,
    limits,
    load_image,
    models_for,
    precision_select,
    progress_callback,
    save_png,
    uploaded_video,
    user_errors,
    workdir,
)
from .inputs import one_of, real_number, whole_number

FACTORS = {"×2": 2, "×4": 4}
NO_SR = "none"
ENCODER_CHOICES = ("h264", "h265", "vp9", "av1")
PIX_FMT_CHOICES = ("yuv420p", "yuv444p", "yuv420p10le")
DEDUP_CHOICES = ("skip", "replace", "off")


def interpolator() -> Callable:
    from serve.interpolate import interpolate_pair

    return interpolate_pair


def interpolation_models(first: str = "") -> List[str]:
    """Trained interpolators, each also fused with DIS flow ('+dis', serve.interp_fusion: the better ones,
    listed first), `first` (default: serve.interp_core.DEFAULT_INTERPOLATOR) leading."""
    from serve.interp_core import DEFAULT_INTERPOLATOR
    from serve.interp_fusion import SUFFIX as DIS

    first = first or DEFAULT_INTERPOLATOR
    trained = [s.name for s in models_for("interpolate")]
    return sorted([n + DIS for n in trained] + trained, key=lambda n: (n != first, not n.endswith(DIS)))


def video_interpolation_models() -> List[str]:
    """Trained interpolators for videos, serve.interp_core.VIDEO_INTERPOLATOR (the fast one) leading."""
    from serve.interp_core import VIDEO_INTERPOLATOR

    return interpolation_models(VIDEO_INTERPOLATOR)


def vsr_choices() -> List[tuple]:
    """(label, name) of the multi-frame modes, offered beside the per-frame models: fusion of the
    per-frame FlashSR models over 7 frames (serve.vsr_fusion, the better one) and the recurrent models."""
    per_frame = {s.name: s for s in models_for("sr")}
    fused = [(f"Video SR (multi-frame, 7-frame fusion) x{per_frame[n].scale}: {n}", n + SUFFIX)
             for n in OFFERED if n in per_frame]
    return fused + [(f"Video SR (multi-frame, recurrent) x{s.scale}: {s.name}", s.name) for s in models_for("vsr")]


def _encoders() -> List[str]:
    from serve.video_encode import available_encoders

    return available_encoders()


def _factor(value, name: str, allowed=(1, 2, 4)) -> int:
    """'×2' (the radio's label), 2 or '2' (what view_api shows) -> 2."""
    return whole_number(FACTORS.get(value, value) if isinstance(value, str) else value, name, 1, 4,
                        allowed=allowed)


def _require_interpolation(model: Optional[str], video: bool = False) -> str:
    models = video_interpolation_models() if video else interpolation_models()
    if not models:
        raise gr.Error("Frame interpolation is not available yet: no interpolation model has been trained. "
                       "Use 1× frame rate to only upscale the video's frames.")
    return one_of(model, "interpolation model", models, default=models[0])


@user_errors
def interpolate_frames(frame0, frame1, factor: str = "×2", model: Optional[str] = None, backend: str = "auto",
                       precision: str = "auto"):
    """Make the in-between frames of two consecutive video frames.

    Args:
        frame0: the first frame.
        frame1: the second frame, the same size as the first.
        factor: "×2" (one frame between) or "×4" (three); 2 and 4 are accepted too.
        model: interpolation model name such as "flowinterp+dis" (the model fused with DIS optical flow,
            better) or "flowinterp_wide"; empty for the default (serve.interp_core.DEFAULT_INTERPOLATOR).
        backend: "auto", "onnx", "torch" or a specific kind such as "onnx-cpu".
        precision: "auto" (default: the fastest whose measured loss is within 0.05 dB), "exact fp32" or
            "fast bf16" (OpenVINO, where the CPU has bf16).

    Returns:
        A gallery of the in-between frames and a summary.
    """
    model = _require_interpolation(model)
    count = _factor(factor, "factor", allowed=(2, 4)) - 1
    backend = checked_backend(backend)
    precision = checked_precision(precision)
    lim = limits()
    a = load_image(frame0, max_pixels=lim.sr_input_pixels, what="first frame")
    b = load_image(frame1, max_pixels=lim.sr_input_pixels, what="second frame")
    if a.rgb.shape != b.rgb.shape:
        raise gr.Error(f"The frames differ in size ({a.width}x{a.height} and {b.width}x{b.height}).")
    started = time.perf_counter()
    middles = interpolator()(a, b, model, factor=count + 1, backend=backend, precision=precision)
    out = workdir("interpolate")
    items = [(save_png(f, out / f"middle_{i + 1}_of_{count}.png"), f"t = {(i + 1) / (count + 1):.2f}")
             for i, f in enumerate(middles)]
    note = (" Note: the frames' transparency (alpha) was dropped; the in-between frames are opaque."
            if a.alpha is not None or b.alpha is not None else "")
    return items, f"**{model}**: {count} frame(s) in {time.perf_counter() - started:.2f} s.{note}"


def _upscale_video(path: str, target, info, sr_model: str, backend: str, report: Callable[[int, int], None],
                   **job) -> dict:
    """Every frame through serve.upscale at the same frame rate (serve.video_job), streams kept; a stop
    (report raising) leaves nothing behind."""
    from serve.video_job import process_video

    lim = limits()
    return process_video(path, target, sr_model=sr_model, interp_model=None, backend=backend, progress=report,
                         max_seconds=lim.video_seconds, max_frames=lim.video_frames,
                         max_frame_pixels=lim.sr_input_pixels,
                         sr_options={"tile": 256, "max_input_pixels": lim.sr_input_pixels,
                                     "max_output_pixels": lim.sr_output_pixels}, **job)


@user_errors
def process_video(video, fps_factor="1", sr_model: str = NO_SR, backend: str = "auto",
                  interp_model: Optional[str] = None, target_fps=0, encoder: str = "h264", crf=-1,
                  pix_fmt: str = "yuv420p", duplicates: str = "skip", precision: str = "auto",
                  progress=gr.Progress(),
                  request: gr.Request = None):
    """Raise a short video's frame rate (frame interpolation) and/or super-resolve its frames.

    Args:
        video: the video file (MP4, WebM, MOV, MKV ...; short clips on the public Space).
        fps_factor: 1 (keep the frame rate), 2 or 4.
        sr_model: an SR model name such as "flashsr_x2" to upscale every frame on its own; "flashsr_x4+fusion"
            (also flashsr_x2, flashsr_real_x4, flashsr_real_x2 + "+fusion": each frame fused with its 6
            neighbours along the motion, the best multi-frame result), a recurrent video SR model such as
            "vsr_x4"; multi-frame modes restart at scene cuts; or "none".
        backend: "auto", "onnx", "torch" or a specific kind such as "onnx-cpu".
        interp_model: interpolation model name ("flowinterp+dis", "flowinterp_wide+dis", "flowinterp", ...);
            empty for the default (serve.interp_core.VIDEO_INTERPOLATOR).
        target_fps: an output frame rate from 1 to 240 (e.g. 60 for 24 -> 60, 59.94 allowed); 0 uses fps_factor.
        encoder: "h264" (default; plays everywhere), "h265", "vp9" or "av1"; all written as MP4.
        crf: quality, lower is better (H.264/H.265 0-51, VP9/AV1 0-63); -1 for the encoder's default
            (H.264 18, H.265 20, VP9 31, AV1 30).
        pix_fmt: "yuv420p" (default), "yuv444p" or "yuv420p10le" (10-bit; not with VP9).
        duplicates: repeated frames when interpolating: "skip" (copied, not interpolated across),
            "replace" (filled with interpolated frames) or "off".
        precision: "auto" (default), "exact fp32", "fast bf16" (OpenVINO) or "fastest int8" (the SR stage only).

    Returns:
        The processed video (MP4), a summary and a dict of details (streams kept, notes).
    """
    from serve.video_encode import available_encoders
    from serve.video_job import output_count, output_rate
    from serve.video_job import process_video as run_job

    factor = _factor(fps_factor, "fps_factor")
    sr_model = one_of(sr_model, "sr_model", [NO_SR] + [s.name for s in models_for("sr")]
                      + [name for _, name in vsr_choices()], default=NO_SR)
    backend = checked_backend(backend)
    target = real_number(0 if target_fps in (None, "") else target_fps, "target_fps", 0, 240) or None
    if target is not None and target < 1:
        raise gr.Error(f"'target_fps' must be 0 (use fps_factor) or from 1 to 240, not {target:g}.")
    if target is not None and factor != 1:
        raise gr.Error("Choose either a frame-rate factor or a target frame rate: set fps_factor to 1 "
                       "when giving target_fps.")
    encoder = one_of(encoder, "encoder", [e for e in ENCODER_CHOICES if e in available_encoders()], default="h264")
    crf = whole_number(-1 if crf in (None, "") else crf, "crf", -1, 63)
    pix_fmt = one_of(pix_fmt, "pix_fmt", PIX_FMT_CHOICES, default="yuv420p")
    duplicates = one_of(duplicates, "duplicates", DEDUP_CHOICES, default="skip")
    precision = checked_precision(precision)
    retime = factor > 1 or target is not None or duplicates == "replace"
    if not retime and sr_model == NO_SR:
        raise gr.Error("Nothing to do: choose an SR model, a 2× / 4× frame rate or a target frame rate.")
    if retime or interp_model not in (None, ""):
        interp_model = _require_interpolation(interp_model, video=True)
    path, name, info = uploaded_video(video, progress)
    lim = limits()
    fps_out = output_rate(info, factor, target)
    frames_out = output_count(info, fps_out)
    if split_name(sr_model) and info.width * info.height * sr_scale(sr_model) ** 2 > FUSION_MAX_OUTPUT_PIXELS:
        raise gr.Error(f"{name}: {info.width}x{info.height} frames upscaled x{sr_scale(sr_model)} are over the "
                       f"multi-frame fusion's limit of {FUSION_MAX_OUTPUT_PIXELS / 1e6:.1f} MP per output frame; "
                       "choose a per-frame SR model.")
    if sr_model in REGISTRY and get_spec(sr_model).recurrent_hidden:
        from serve.vsr import MAX_FRAME_PIXELS

        if info.width * info.height > MAX_FRAME_PIXELS:
            raise gr.Error(f"{name}: {info.width}x{info.height} frames are over the multi-frame model's limit of "
                           f"{MAX_FRAME_PIXELS / 1e6:.2f} MP (it does not tile); choose a per-frame SR model.")
    if sr_model != NO_SR:
        work = frames_out * info.width * info.height
        if work > lim.video_sr_pixels:
            raise gr.Error(f"{name}: upscaling {frames_out} frames of {info.width}x{info.height} is "
                           f"{work / 1e6:.1f} MP of input, over this machine's limit of "
                           f"{lim.video_sr_pixels / 1e6:.0f} MP; use a shorter or smaller clip.")
    stem = name.rsplit(".", 1)[0][:60] or "video"
    rate = f"{float(fps_out):.4g}fps" if target is not None else f"{factor}x_fps"
    sr_part = "" if sr_model == NO_SR else "_" + sr_model.replace("+", "_")  # no '+' in a file URL
    out_name = f"{stem}_{rate}{sr_part}{'' if encoder == 'h264' else '_' + encoder}"
    target_path = workdir("video") / f"{out_name}.mp4"
    job = {"encoder": encoder, "crf": None if crf < 0 else crf, "pix_fmt": pix_fmt, "precision": precision}

    started = time.perf_counter()
    with start_job(request) as running:
        report = progress_callback(progress, "frames", running, unit="frames")
        if retime:
            result = run_job(path, target_path, fps_factor=factor, target_fps=target, interp_model=interp_model,
                             sr_model=None if sr_model == NO_SR else sr_model, backend=backend, dedup=duplicates,
                             max_seconds=lim.video_seconds, max_frames=lim.video_frames,
                             max_frame_pixels=lim.sr_input_pixels, progress=report, **job)
        else:
            result = _upscale_video(path, target_path, info, sr_model, backend, report, **job)
    seconds = time.perf_counter() - started
    details = {"input": info.describe(), **{k: v for k, v in result.items() if k not in ("input", "output")},
               "sr_model": None if sr_model == NO_SR else sr_model,
               "interpolation_model": interp_model if retime else None, "seconds": round(seconds, 2)}
    size = result.get("size", [info.width, info.height])
    scale = 1 if sr_model == NO_SR else sr_scale(sr_model)
    padded = list(size) != [info.width * scale, info.height * scale]
    kept = [n for n in result.get("streams", []) if not n.endswith("left out (asked)")]
    text = (f"{info.frames} frames at {float(info.fps):.2f} fps ({info.width}×{info.height}) → "
            f"{result.get('frames_out')} frames at {result.get('fps_out', 0):.2f} fps ({size[0]}×{size[1]}"
            f"{', odd sides padded by 1 px for 4:2:0' if padded else ''}), {encoder.upper()} "
            f"in {seconds:.1f} s; audio {'kept' if result.get('audio') else 'none'}."
            + "".join(f"\n- {line}" for line in result.get("notes", []) + kept))
    return str(target_path), text, details


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
            precision_i = precision_select()
            run_pair = gr.Button("Interpolate", variant="primary", interactive=bool(interp), elem_id="interpolate-run")
    middles = gr.Gallery(label="In-between frames", columns=3, height=240, elem_id="middles")
    pair_info = gr.Markdown(label="Summary")
    pair = [p for p in (example_path("frame_00010.jpg"), example_path("frame_00011.jpg"))]
    if all(pair):
        gr.Examples([pair], [frame0, frame1], cache_examples=False)
    run_pair.click(interpolate_frames, [frame0, frame1, factor, interp_model, backend_i, precision_i],
                   [middles, pair_info],
                   api_name="interpolate", concurrency_id="compute", preprocess=False)

    gr.Markdown(f"### Video → higher frame rate and/or super-resolved frames\nClips up to {lim.video_seconds:g} s "
                f"and {lim.video_frames} frames; upscaling up to {lim.video_sr_pixels / 1e6:.0f} MP of input frames "
                "in all on this machine. The output is an MP4 (H.264 unless chosen below) with every audio and "
                "subtitle track kept, copied where MP4 allows.")
    fps_choices = [("1× (keep)", "1"), ("2×", "2"), ("4×", "4")]  # strings: the API/MCP schema says string
    with gr.Row():
        with gr.Column():
            video = gr.Video(label="Video", sources=["upload"], height=260, elem_id="video-input")
            with gr.Row():
                fps = gr.Radio(fps_choices, value="1",
                               label="Frame rate" + ("" if interp else " (2× and 4× are not available yet)"))
                sr = gr.Dropdown([NO_SR] + sr_names + vsr_choices(), value=sr_names[0] if sr_names else NO_SR,
                                 label="Super-resolve frames with",
                                 info="per-frame SR, or Video SR (multi-frame): uses the previous frames")
                backend_v = gr.Dropdown(backend_choices(), value="auto", label="Backend")
                precision_v = precision_select()
            video_interp = video_interpolation_models()
            interp_video = gr.Dropdown(video_interp, value=video_interp[0] if video_interp else None,
                                       label="Interpolation model", interactive=bool(video_interp),
                                       info="flowinterp: fast; flowinterp_wide: better, 2.6-3x slower")
            with gr.Accordion("Frame rate and encoding options", open=False):
                with gr.Row():
                    target_fps = gr.Number(0, label="Target frame rate (0 = use the factor above)", minimum=0,
                                           maximum=240, elem_id="video-target-fps")
                    duplicates = gr.Radio(list(DEDUP_CHOICES), value="skip", label="Repeated frames",
                                          info="skip: copy them; replace: fill with interpolated frames")
                with gr.Row():
                    encoder = gr.Radio([e for e in ENCODER_CHOICES if e in _encoders()], value="h264",
                                       label="Encoder (MP4; H.265 plays in few browsers)")
                    crf = gr.Number(-1, label="CRF (-1 = encoder default; lower = better)", precision=0,
                                    minimum=-1, maximum=63)
                    pix_fmt = gr.Radio(list(PIX_FMT_CHOICES), value="yuv420p", label="Pixel format")
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
    event = run_video.click(process_video, [video, fps, sr, backend_v, interp_video, target_fps, encoder, crf,
                                            pix_fmt, duplicates, precision_v],
                            [video_out, video_info, video_details], api_name="video", concurrency_id=LONG_JOBS,
                            concurrency_limit=1, preprocess=False)
    cancel_on(stop_video, event)
