"""Frame interpolation: two frames -> in-between frames, and video -> video at N x or any target frame rate.

    frames = interpolate_pair(frame0, frame1, factor=2)                 # [middle], HxWx3 float in [0,1]
    info = interpolate_video("in.mp4", "out.mp4", factor=4)              # H.264 MP4, audio kept

Video runs in serve.video_job (streamed: decode one frame, interpolate, encode; never the whole
clip in memory; frame scheduling for any target rate, duplicate frames, resumable segments). A
scene cut between two frames (thumbnail histogram / mean-difference test, serve.interp_core) is not morphed
across: the earlier frame is repeated instead. The output is written to a hidden temp file beside
`out_path` and renamed only on success, so a failure never leaves a half-written file behind.

CLI: python -m serve.interpolate IN.mp4 --factor 2 --out OUT.mp4 [--model flowinterp] [--backend auto]
     python -m serve.interpolate A.png B.png --factor 4 --out mid.png   (writes mid_1.png ... mid_3.png)
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np

from common.images import DecodedImage, ImageLoadError, read_image, to_uint8

from .contract import InputError, cli_main
from .interp_core import DEFAULT_INTERPOLATOR, VIDEO_INTERPOLATOR, interp_backend, interpolate_arrays
from .sr import _split_array

FACTORS = (2, 4)
MAX_PAIR_PIXELS = 8_000_000
DEFAULT_MAX_SECONDS = 20.0
DEFAULT_MAX_FRAMES = 1200
Image = Union[DecodedImage, np.ndarray, str, os.PathLike]


def timesteps(factor: int) -> List[float]:
    """The in-between times for a frame-rate factor: 2 -> [0.5], 4 -> [0.25, 0.5, 0.75]."""
    if factor not in FACTORS:
        raise InputError(f"factor must be one of {FACTORS}, not {factor}")
    return [i / factor for i in range(1, factor)]


def _as_rgb(image: Image, label: str) -> DecodedImage:
    if isinstance(image, DecodedImage):
        return image
    if isinstance(image, (str, os.PathLike)):
        try:
            return read_image(image)
        except ImageLoadError as exc:
            raise InputError(str(exc)) from None
    if image is None:
        raise InputError(f"{label} is missing: interpolation needs two frames")
    return _split_array(image)


def interpolate_pair(frame0: Image, frame1: Image, model_name: str = DEFAULT_INTERPOLATOR, factor: int = 2,
                     backend: str = "auto", *, max_pixels: int = MAX_PAIR_PIXELS, precision: str = "fp32",
                     **backend_options) -> List[np.ndarray]:
    """The factor-1 frames between frame0 and frame1 (t = 1/factor, ...), each HxWx3 float32 in [0,1].

    Frames may be DecodedImage, arrays (HxW[x1|3|4], float [0,1] or uint8/16) or file paths; they
    must have the same size. Grey pairs give grey-valued RGB; alpha is dropped. `precision`: 'fp32',
    'bf16' (OpenVINO) or 'auto' (serve.precision).
    """
    times = timesteps(factor)
    a, b = _as_rgb(frame0, "the first frame"), _as_rgb(frame1, "the second frame")
    if a.rgb.shape != b.rgb.shape:
        raise InputError(f"the two frames have different sizes ({a.width}x{a.height} and {b.width}x{b.height}); "
                         "interpolation needs two frames of the same size")
    if a.width * a.height > max_pixels:
        raise InputError(f"frames of {a.width}x{a.height} are over the limit of {max_pixels / 1e6:.1f} MP")
    if min(a.width, a.height) < 8:
        raise InputError(f"frames of {a.width}x{a.height} are too small (at least 8 px a side)")
    runner = interp_backend(model_name, backend, precision, **backend_options)
    frames = interpolate_arrays(runner, a.rgb, b.rgb, times)
    if a.was_grey and b.was_grey:
        frames = [np.repeat(f.mean(axis=2, keepdims=True), 3, axis=2) for f in frames]
    return frames


def interpolate_video(in_path: Union[str, os.PathLike], out_path: Union[str, os.PathLike], factor: int = 2,
                      model_name: str = VIDEO_INTERPOLATOR, *, backend: str = "auto",
                      max_seconds: float = DEFAULT_MAX_SECONDS, max_frames: int = DEFAULT_MAX_FRAMES,
                      sr_model: Optional[str] = None, keep_audio: bool = True,
                      progress: Optional[Callable[[int, int], None]] = None, target_fps: Optional[float] = None,
                      **options) -> Dict[str, Any]:
    """Write `in_path` at `factor` x its frame rate (or at `target_fps`) to `out_path`; returns an info dict.

    A thin front to serve.video_job.process_video (which see, for encoder, crf, pix_fmt, dedup,
    segment_frames, resume and the streams kept): `progress(done, total)` counts output frames;
    `sr_model` (e.g. 'flashsr_x2') also upscales every output frame. Raises InputError with a
    one-sentence message for unusable input and ServeError for runtime failures.
    """
    from .video_job import process_video

    if target_fps is None and factor not in range(1, 17):
        raise InputError(f"factor must be a whole number from 1 to 16, not {factor}")
    return process_video(in_path, out_path, fps_factor=1 if target_fps is not None else factor,
                         target_fps=target_fps, interp_model=model_name, sr_model=sr_model, backend=backend,
                         max_seconds=max_seconds, max_frames=max_frames, keep_audio=keep_audio, progress=progress,
                         max_frame_pixels=options.pop("max_frame_pixels", 1920 * 1088), **options)


@cli_main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m serve.interpolate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="one video, or two images")
    p.add_argument("--out", required=True, help="output .mp4 (video) or image path (pairs)")
    p.add_argument("--factor", type=int, default=2, choices=FACTORS)
    p.add_argument("--model", default=None,
                   help=f"default: {DEFAULT_INTERPOLATOR} for two images, {VIDEO_INTERPOLATOR} for a video")
    p.add_argument("--backend", default="auto",
                   help="auto, torch, onnx, openvino, trt or a kind from serve.runtime.KINDS")
    p.add_argument("--precision", default="fp32", help="fp32 (exact), bf16, int8 (SR stage) or auto")
    p.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS)
    p.add_argument("--sr-model", default=None, help="also upscale every frame with this SR model")
    p.add_argument("--no-audio", action="store_true")
    args = p.parse_args(argv)
    if args.max_seconds is not None and not args.max_seconds > 0:  # NaN fails this too (it meant no limit)
        p.error(f"--max-seconds must be a positive number of seconds, not {args.max_seconds}")
    if len(args.inputs) == 2:
        if args.sr_model:  # the pair path has no SR stage: say so rather than ignore the flag
            raise InputError("--sr-model applies to a video; for two images, upscale the frames with serve.sr")
        frames = interpolate_pair(args.inputs[0], args.inputs[1], args.model or DEFAULT_INTERPOLATOR, args.factor,
                                  args.backend,
                                  precision=args.precision)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        paths = [out] if len(frames) == 1 else [out.with_name(f"{out.stem}_{i + 1}{out.suffix}")
                                                for i in range(len(frames))]
        from PIL import Image as PILImage

        for frame, path in zip(frames, paths):
            PILImage.fromarray(to_uint8(frame)).save(path)
        print("wrote " + ", ".join(str(p) for p in paths))
        return 0
    if len(args.inputs) != 1:
        raise InputError("give one video, or two images")
    from tqdm import tqdm

    with tqdm(desc="interpolating", unit="frame", disable=None) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        info = interpolate_video(args.inputs[0], args.out, args.factor, args.model or VIDEO_INTERPOLATOR,
                                 backend=args.backend,
                                 max_seconds=args.max_seconds, sr_model=args.sr_model,
                                 keep_audio=not args.no_audio, progress=progress, precision=args.precision)
    print(f"{info['output']}: {info['frames_out']} frames at {info['fps_out']:.3g} fps from {info['input']}; "
          f"scene cuts at {info['scene_cuts'] or 'none'}; audio {'kept' if info['audio'] else 'none'}; "
          f"{info['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
