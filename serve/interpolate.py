"""Frame interpolation: two frames -> in-between frames, and video -> video at 2x or 4x the frame rate.

    frames = interpolate_pair(frame0, frame1, "flowinterp", factor=2)   # [middle], HxWx3 float in [0,1]
    info = interpolate_video("in.mp4", "out.mp4", factor=4)              # H.264 MP4, audio kept

Video is streamed (decode one frame, interpolate, encode; never the whole clip in memory). A
scene cut between two frames (thumbnail histogram / mean-difference test) is not morphed across:
the earlier frame is repeated instead. The last frame is held factor-1 times so the duration
stays the same. The output is written to a hidden temp file beside `out_path` and renamed only
on success, so a failure never leaves a half-written file behind.

CLI: python -m serve.interpolate IN.mp4 --factor 2 --out OUT.mp4 [--model flowinterp] [--backend auto]
     python -m serve.interpolate A.png B.png --factor 4 --out mid.png   (writes mid_1.png ... mid_3.png)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from common.images import DecodedImage, ImageLoadError, read_image, to_uint8
from models import get_spec
from models.io import FRAME0, FRAME1, FRAME_OUT, TIMESTEP

from .contract import InputError, cli_main
from .runtime import get_backend
from .sr import _split_array
from .video import Mp4Writer, audio_format, probe, read_frames

FACTORS = (2, 4)
MAX_PAIR_PIXELS = 8_000_000
DEFAULT_MAX_SECONDS = 20.0
DEFAULT_MAX_FRAMES = 1200
CUT_HIST_DISTANCE = 0.30  # half L1 distance of 32-bin grey histograms, in [0, 1]
CUT_MEAN_DIFF = 0.15  # mean absolute grey difference of 64-px thumbnails, in [0, 1]
# (on UCF101: 0 of 379 real frame pairs flagged, 376 of 378 cross-video pairs caught)
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


def _interpolate_arrays(runner, rgb0: np.ndarray, rgb1: np.ndarray, times: Sequence[float]) -> List[np.ndarray]:
    """One backend call for all timesteps: a batch of len(times) with the frames repeated."""
    n = len(times)
    x0 = np.repeat(rgb0.transpose(2, 0, 1)[None], n, axis=0)
    x1 = np.repeat(rgb1.transpose(2, 0, 1)[None], n, axis=0)
    t = np.asarray(times, dtype=np.float32).reshape(n, 1, 1, 1)
    out = runner.run({FRAME0: x0, FRAME1: x1, TIMESTEP: t})[FRAME_OUT]
    return [np.ascontiguousarray(np.clip(o.transpose(1, 2, 0), 0.0, 1.0)) for o in out]


def _interp_backend(model_name: str, backend: str, **backend_options):
    spec = get_spec(model_name)
    if not spec.timestep_input:
        raise ValueError(f"'{model_name}' is a {spec.task} model, not a frame interpolator")
    return get_backend(model_name, backend, **backend_options)


def interpolate_pair(frame0: Image, frame1: Image, model_name: str = "flowinterp", factor: int = 2,
                     backend: str = "auto", *, max_pixels: int = MAX_PAIR_PIXELS,
                     **backend_options) -> List[np.ndarray]:
    """The factor-1 frames between frame0 and frame1 (t = 1/factor, ...), each HxWx3 float32 in [0,1].

    Frames may be DecodedImage, arrays (HxW[x1|3|4], float [0,1] or uint8/16) or file paths; they
    must have the same size. Grey pairs give grey-valued RGB; alpha is dropped.
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
    runner = _interp_backend(model_name, backend, **backend_options)
    frames = _interpolate_arrays(runner, a.rgb, b.rgb, times)
    if a.was_grey and b.was_grey:
        frames = [np.repeat(f.mean(axis=2, keepdims=True), 3, axis=2) for f in frames]
    return frames


def _thumbnail(rgb: np.ndarray) -> np.ndarray:
    import cv2

    grey = rgb.astype(np.float32).mean(axis=2) / (255.0 if rgb.dtype == np.uint8 else 1.0)
    width = 64
    height = max(1, round(grey.shape[0] * width / grey.shape[1]))
    return cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA)


def is_scene_cut(thumb0: np.ndarray, thumb1: np.ndarray) -> bool:
    """True when two frames (as `_thumbnail`s) belong to different shots: morphing them makes ghosts."""
    h0 = np.histogram(thumb0, bins=32, range=(0.0, 1.0))[0] / thumb0.size
    h1 = np.histogram(thumb1, bins=32, range=(0.0, 1.0))[0] / thumb1.size
    hist_distance = 0.5 * float(np.abs(h0 - h1).sum())
    mean_diff = float(np.abs(thumb0 - thumb1).mean())
    return hist_distance > CUT_HIST_DISTANCE or mean_diff > CUT_MEAN_DIFF


def interpolate_video(in_path: Union[str, os.PathLike], out_path: Union[str, os.PathLike], factor: int = 2,
                      model_name: str = "flowinterp", *, backend: str = "auto",
                      max_seconds: float = DEFAULT_MAX_SECONDS, max_frames: int = DEFAULT_MAX_FRAMES,
                      sr_model: Optional[str] = None, keep_audio: bool = True,
                      progress: Optional[Callable[[int, int], None]] = None, **backend_options) -> Dict[str, Any]:
    """Write `in_path` at `factor` x its frame rate to `out_path` (H.264 MP4); returns an info dict.

    `progress(done_pairs, total_pairs)` is called after each input frame. `sr_model` (e.g.
    'flashsr_x2') also upscales every output frame (spatio-temporal). Raises InputError with a
    one-sentence message for unusable input (see serve.video.probe) and ServeError for runtime failures.
    """
    times = timesteps(factor)
    info = probe(in_path, max_seconds=max_seconds, max_frames=max_frames)
    if info.frames < 2:
        raise InputError(f"{Path(in_path).name}: the video has a single frame; interpolation needs at least two")
    out_fps = info.fps * factor
    if float(out_fps) > 240:
        raise InputError(f"{Path(in_path).name}: {float(info.fps):.3g} fps x{factor} would be {float(out_fps):.0f} fps, "
                         "over the 240 fps limit; use a smaller factor")
    runner = _interp_backend(model_name, backend, **backend_options)
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".mp4":
        raise InputError(f"{out_path.name}: the output must be an .mp4 file (H.264)")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    upscale = _sr_stage(sr_model, backend) if sr_model else None
    width, height = info.width, info.height
    if upscale:
        scale = get_spec(sr_model).scale
        width, height = width * scale, height * scale
    audio = audio_format(in_path) if keep_audio and info.has_audio else None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.stem}-", suffix=".mp4", dir=out_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    started = time.perf_counter()
    cuts, written, pairs, previous, prev_thumb = [], 0, 0, None, None
    try:
        writer = Mp4Writer(tmp, out_fps, width, height, audio=audio)
        try:
            emit = (lambda f: writer.write(upscale(f))) if upscale else writer.write
            for index, frame in enumerate(read_frames(in_path)):
                thumb = _thumbnail(frame)
                if previous is not None:
                    emit(previous)
                    if is_scene_cut(prev_thumb, thumb):
                        cuts.append(index)
                        middles = [previous] * len(times)
                    else:
                        middles = [to_uint8(m) for m in _interpolate_arrays(
                            runner, previous.astype(np.float32) / 255.0, frame.astype(np.float32) / 255.0, times)]
                    for m in middles:
                        emit(m)
                    pairs += 1
                previous, prev_thumb = frame, thumb
                if progress is not None:
                    progress(index + 1, info.frames)
            if previous is None:
                raise InputError(f"{Path(in_path).name}: no video frames could be decoded")
            for _ in range(factor):  # the last frame, held so the duration is unchanged
                emit(previous)
            writer.finish_video()
            audio_kept = writer.copy_audio(in_path) if audio else False
        finally:
            writer.close()
            written = writer.frames
        tmp.chmod(0o644)  # mkstemp makes it owner-only
        tmp.replace(out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"input": info.describe(), "output": str(out_path), "factor": factor, "model": model_name,
            "backend": runner.describe(), "frames_in": info.frames, "frames_out": written,
            "fps_in": float(info.fps), "fps_out": float(out_fps), "scene_cuts": cuts, "audio": audio_kept,
            "size": list(writer.written_size), "codec": "h264 (libx264, yuv420p) in MP4",
            "seconds": round(time.perf_counter() - started, 2)}


def _sr_stage(sr_model: str, backend: str) -> Callable[[np.ndarray], np.ndarray]:
    from .sr import upscale

    if get_spec(sr_model).task != "sr":
        raise ValueError(f"'{sr_model}' is not a super-resolution model")

    def run(frame: np.ndarray) -> np.ndarray:
        return to_uint8(upscale(frame, sr_model, backend).image)

    return run


@cli_main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m serve.interpolate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="one video, or two images")
    p.add_argument("--out", required=True, help="output .mp4 (video) or image path (pairs)")
    p.add_argument("--factor", type=int, default=2, choices=FACTORS)
    p.add_argument("--model", default="flowinterp")
    p.add_argument("--backend", default="auto", help="auto, torch, onnx, trt or a kind from serve.runtime.KINDS")
    p.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS)
    p.add_argument("--sr-model", default=None, help="also upscale every frame with this SR model")
    p.add_argument("--no-audio", action="store_true")
    args = p.parse_args(argv)
    if len(args.inputs) == 2:
        frames = interpolate_pair(args.inputs[0], args.inputs[1], args.model, args.factor, args.backend)
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

        info = interpolate_video(args.inputs[0], args.out, args.factor, args.model, backend=args.backend,
                                 max_seconds=args.max_seconds, sr_model=args.sr_model,
                                 keep_audio=not args.no_audio, progress=progress)
    print(f"{info['output']}: {info['frames_out']} frames at {info['fps_out']:.3g} fps from {info['input']}; "
          f"scene cuts at {info['scene_cuts'] or 'none'}; audio {'kept' if info['audio'] else 'none'}; "
          f"{info['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
