"""Video jobs: any frame-rate change (x N or a target fps) and/or SR of every frame, in resumable segments.

    info = process_video("in.mkv", "out.mp4", target_fps=60, sr_model="flashsr_x2", encoder="h265")

Frame scheduling. Output frame j sits at time j / fps_out on the input's timeline (source frame i at
i / fps_in; for a variable-frame-rate source, at its own timestamp, so the output is constant-rate).
A time that falls on a source frame copies it; one between frames a and b is interpolated at
t = (time - a) / (b - a) (flowinterp takes any t in (0, 1)); all t of one pair go in one batched
call. A scene cut between a and b repeats a instead of morphing. Without an interpolation model
(SR only), the nearest frame is taken. The output holds ceil(duration x fps_out) frames, so the
duration is kept: 24 frames at 24 fps -> 60 frames at 60 fps.

A video SR model (serve.vsr, multi-frame) carries features from frame to frame: alone it upscales the
emitted frames in order, restarting at each segment; with interpolation it upscales the source frames
and the in-between frames are interpolated at the output size (the better order, scripts/vsr_spacetime.py).

Duplicate frames (a frame repeating the previous one, e.g. animation "on twos" or a VFR->CFR
conversion's fillers): `dedup="skip"` (default) copies instead of interpolating across them;
`"replace"` drops runs of up to DUP_MAX_RUN repeats, so the gap is filled with interpolated frames
(longer runs are a still shot and are kept); `"off"` treats them as any frame.

Segments and resume. Output frames are encoded in segments of `segment_frames` into a work folder
next to the output (`.NAME.work/`, with a job.json of the settings); a finished segment is renamed
from its .partial name, so a job killed halfway and run again with the same settings
(`resume=True`) decodes past the finished segments without running any model and restarts at the
first missing one. Each segment's frames depend only on the source and the settings (an
interpolated frame always uses the same two source frames and t), so boundaries are seamless. The
segments are then remuxed (no re-encode) into one file with every audio and subtitle stream of
the source (serve.video_streams), written to a temp name and renamed on success.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

import numpy as np

from common.images import to_uint8

from .contract import InputError
from .interp_core import interp_backend, interpolate_arrays, is_scene_cut, thumbnail
from .video_encode import DEFAULT_ENCODER, DEFAULT_PIX_FMT, VideoWriter, choose_encoder
from .video_io import VideoInfo, probe, read_frames, snap_rate
from .video_streams import assemble, plan_streams
from .vsr import upscaled_anchors

PathLike = Union[str, os.PathLike]
MIN_FPS, MAX_FPS = 1, 240
MAX_FACTOR = 16
DEFAULT_SEGMENT_FRAMES = 240
DEDUP_MODES = ("off", "skip", "replace")
DUP_MEAN_DIFF = 0.004  # mean |grey difference| of 64-px thumbnails below which a frame repeats the last (in [0,1])
DUP_MAX_DIFF = 0.04  # ... and no thumbnail pixel moves more than this (a small object moving is not a repeat)
DUP_MAX_RUN = 3  # longer runs of repeats are a still shot, not a repeated frame
TIME_EPS = 1e-3  # t this close to 0 or 1 copies the source frame
MAX_BATCH = 4  # timesteps per interpolation call


@dataclass
class Anchor:
    """A decoded source frame on the input timeline."""
    index: int
    time: Fraction
    rgb: np.ndarray
    thumb: Optional[np.ndarray]
    cut: bool = False  # a scene cut lies between the previous frame and this one
    dup: bool = False  # this frame repeats the previous one
    _float: Optional[np.ndarray] = None

    def as_float(self) -> np.ndarray:
        if self._float is None:
            self._float = self.rgb.astype(np.float32) / 255.0
        return self._float


def is_duplicate(thumb0: np.ndarray, thumb1: np.ndarray) -> bool:
    """True when two frames (as serve.interp_core.thumbnail) are the same picture up to coding noise."""
    diff = np.abs(thumb0 - thumb1)
    return float(diff.mean()) < DUP_MEAN_DIFF and float(diff.max()) < DUP_MAX_DIFF


def output_rate(info: VideoInfo, fps_factor: int = 1, target_fps: Optional[float] = None) -> Fraction:
    """The output frame rate; InputError for a factor or target out of range."""
    if target_fps is not None:
        if fps_factor != 1:
            raise InputError("give a frame-rate factor or a target frame rate, not both")
        if isinstance(target_fps, bool) or not isinstance(target_fps, (int, float, Fraction)) \
                or not math.isfinite(target_fps) or not MIN_FPS <= target_fps <= MAX_FPS:
            raise InputError(f"the target frame rate must be from {MIN_FPS} to {MAX_FPS} fps, not {target_fps!r}")
        return snap_rate(Fraction(target_fps).limit_denominator(1001 * 100), tolerance=1e-4)
    if isinstance(fps_factor, bool) or not isinstance(fps_factor, (int, np.integer)) \
            or not 1 <= fps_factor <= MAX_FACTOR:
        raise InputError(f"the frame-rate factor must be a whole number from 1 to {MAX_FACTOR}, not {fps_factor!r}")
    rate = info.fps * int(fps_factor)
    if rate > MAX_FPS:
        raise InputError(f"{float(info.fps):.3g} fps x{fps_factor} would be {float(rate):.0f} fps, over the "
                         f"{MAX_FPS} fps limit; use a smaller factor")
    return rate


def output_count(info: VideoInfo, fps_out: Fraction) -> int:
    """Frames that cover the input's duration at fps_out."""
    duration = info.span + 1 / info.fps if info.vfr else Fraction(info.frames) / info.fps
    return max(1, math.ceil(duration * fps_out))


def _anchors(path: PathLike, info: VideoInfo, detect: bool) -> Iterator[Anchor]:

    previous = None
    for index, (rgb, when) in enumerate(read_frames(path, with_times=True)):
        if info.vfr and when is not None:
            when = Fraction(when).limit_denominator(10 ** 6) - info.start
            if previous is not None and when <= previous.time:
                continue  # a repeated or out-of-order timestamp: the frame has no slot of its own
        else:
            when = Fraction(index) / info.fps
        anchor = Anchor(index, when, rgb, thumbnail(rgb) if detect else None)
        if detect and previous is not None:
            anchor.cut = is_scene_cut(previous.thumb, anchor.thumb)
            anchor.dup = not anchor.cut and is_duplicate(previous.thumb, anchor.thumb)
        yield anchor
        previous = anchor


def _drop_repeats(anchors: Iterator[Anchor], dropped: List[int]) -> Iterator[Anchor]:
    """Leave out runs of up to DUP_MAX_RUN repeated frames, so interpolation fills their time."""
    held: List[Anchor] = []
    still = False
    for anchor in anchors:
        if not anchor.dup:
            dropped.extend(a.index for a in held)
            held, still = [], False
            yield anchor
        elif still:
            yield anchor
        else:
            held.append(anchor)
            if len(held) > DUP_MAX_RUN:
                still = True
                yield from held
                held = []
    dropped.extend(a.index for a in held)


def schedule(anchors: Iterator[Anchor], count: int, fps_out: Fraction, interpolate: bool) -> Iterator[tuple]:
    """(j, a, b, t) for each output frame j: copy a when b is None, else interpolate a -> b at t."""
    it = iter(anchors)
    a = next(it, None)
    if a is None:
        raise InputError("no video frames could be decoded")
    b = next(it, None)
    for j in range(count):
        when = Fraction(j) / fps_out
        while b is not None and b.time <= when:
            a, b = b, next(it, None)
        if b is None:
            yield j, a, None, 0.0
            continue
        t = float((when - a.time) / (b.time - a.time))
        if not interpolate:
            yield j, (b if t > 0.5 else a), None, 0.0  # the nearest frame
        elif t < TIME_EPS or b.cut or b.dup:
            yield j, a, None, 0.0
        elif t > 1 - TIME_EPS:
            yield j, b, None, 0.0
        else:
            yield j, a, b, t


class WorkFolder:
    """`.NAME.work/` next to the output: job.json and the finished segments of one set of settings."""

    def __init__(self, out_path: Path, record: dict, resume: bool):
        self.path = out_path.parent / f".{out_path.name}.work"
        self.resumed = False
        if self.path.is_dir():
            try:
                same = json.loads((self.path / "job.json").read_text()) == record
            except (OSError, ValueError):
                same = False
            if resume and same:
                self.resumed = True
            else:
                shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        for partial in self.path.glob("*.partial.mp4"):
            partial.unlink()
        (self.path / "job.json").write_text(json.dumps(record, indent=1))

    def segment(self, k: int) -> Path:
        return self.path / f"seg_{k:05d}.mp4"

    def partial(self, k: int) -> Path:
        return self.path / f"seg_{k:05d}.partial.mp4"


def _job_record(in_path: Path, fps_out: Fraction, count: int, size, settings, **extra) -> dict:
    stat = in_path.stat()
    return {"source": str(in_path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "fps_out": str(fps_out), "frames": count, "size": list(size), **settings.as_dict(),
            **{k: (str(v) if v is not None else None) for k, v in sorted(extra.items())}}


def process_video(in_path: PathLike, out_path: PathLike, *, fps_factor: int = 1, target_fps: Optional[float] = None,
                  interp_model: Optional[str] = "flowinterp", sr_model: Optional[str] = None, backend: str = "auto",
                  encoder: str = DEFAULT_ENCODER, crf: Optional[int] = None, pix_fmt: str = DEFAULT_PIX_FMT,
                  dedup: str = "skip", keep_audio: bool = True, keep_subtitles: bool = True,
                  max_seconds: float = math.inf, max_frames: float = math.inf,
                  max_frame_pixels: Optional[int] = None, segment_frames: int = DEFAULT_SEGMENT_FRAMES,
                  resume: bool = False, progress: Optional[Callable[[int, int], None]] = None,
                  sr_options: Optional[dict] = None, precision: str = "fp32",
                  **backend_options) -> Dict[str, Any]:
    """Write `in_path` re-timed and/or super-resolved to `out_path`; returns an info dict (see module doc).

    `progress(done, total)` counts output frames. `resume=False` removes the work folder on failure
    (what the app wants); the CLI keeps it so the next run resumes. InputError for unusable input or
    settings, ServeError for runtime failures.
    """
    started = time.perf_counter()
    in_path, out_path = Path(in_path), Path(out_path)
    if dedup not in DEDUP_MODES:
        raise InputError(f"duplicates must be one of {', '.join(DEDUP_MODES)}, not '{dedup}'")
    if isinstance(segment_frames, bool) or not isinstance(segment_frames, int) or segment_frames < 1:
        raise InputError(f"segment_frames must be a whole number of at least 1, not {segment_frames!r}")
    settings = choose_encoder(encoder, crf, pix_fmt, out_path)
    info = probe(in_path, max_seconds=max_seconds, max_frames=max_frames, max_frame_pixels=max_frame_pixels)
    fps_out = output_rate(info, fps_factor, target_fps)
    interpolate = bool(interp_model) and (fps_out != info.fps or bool(info.vfr) or dedup == "replace")
    if interpolate and info.frames < 2:
        raise InputError(f"{in_path.name}: the video has a single frame; interpolation needs at least two")
    runner = None
    if interpolate:

        runner = interp_backend(interp_model, backend, precision, **backend_options)
    upscale, sr_info = (None, {})
    width, height = info.width, info.height
    if sr_model:
        from models import get_spec

        upscale, sr_info = _sr_stage(sr_model, backend, {"precision": precision, **(sr_options or {})})
        width, height = width * get_spec(sr_model).scale, height * get_spec(sr_model).scale
    count = output_count(info, fps_out)
    plans = plan_streams(in_path, settings.container, keep_audio=keep_audio, keep_subtitles=keep_subtitles)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    record = _job_record(in_path, fps_out, count, (width, height), settings, interp=interp_model if interpolate
                         else None, sr=sr_model, dedup=dedup if interpolate else None, segment=segment_frames,
                         weights=backend_options.get("weights_path"))
    work = WorkFolder(out_path, record, resume)
    segments = [work.segment(k) for k in range(math.ceil(count / segment_frames))]
    reused = [k for k, seg in enumerate(segments) if work.resumed and seg.is_file()]
    dropped: List[int] = []
    stats = {"computed": 0, "written": 0, "cuts": [], "dups": []}
    try:
        anchors = _watch(_anchors(in_path, info, detect=interpolate), stats)
        if interpolate and dedup == "replace":
            anchors = _drop_repeats(anchors, dropped)
        if interpolate and hasattr(upscale, "reset"):  # video SR: upscale the source frames, interpolate at HR
            anchors, upscale = upscaled_anchors(anchors, upscale), None
        frames = schedule(anchors, count, fps_out, interpolate)
        _encode_segments(frames, count, segment_frames, work, set(reused), settings, fps_out, (width, height),
                         runner, upscale, stats, progress)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.stem}-", suffix=out_path.suffix, dir=out_path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            assemble(tmp, segments, fps_out, in_path, plans, settings, info.start)
            tmp.chmod(0o644)  # mkstemp makes it owner-only
            tmp.replace(out_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except BaseException:
        if not resume:
            shutil.rmtree(work.path, ignore_errors=True)
        raise
    shutil.rmtree(work.path, ignore_errors=True)
    return _result(in_path, out_path, info, fps_out, count, settings, plans, runner, interp_model if interpolate
                   else None, sr_model, sr_info, dedup, dropped, stats, reused, len(segments), (width, height),
                   time.perf_counter() - started)


def _sr_stage(sr_model: str, backend: str, options: dict):
    """A frame -> upscaled uint8 frame function, and a dict that holds the last call's backend info."""
    from models import get_spec

    from .sr import upscale

    if get_spec(sr_model).task == "vsr":  # multi-frame: stateful, restarts at cuts and segments (serve.vsr)
        from .vsr import VideoUpscaler

        upscaler = VideoUpscaler(sr_model, backend, precision=options.get("precision", "fp32"))
        return upscaler, {"backend": upscaler.describe()}
    if get_spec(sr_model).task != "sr":
        raise InputError(f"'{sr_model}' is not a super-resolution model")
    info: Dict[str, Any] = {}

    def run(frame: np.ndarray) -> np.ndarray:
        result = upscale(frame, sr_model, backend, **options)
        info["backend"] = {k: result.info.get(k) for k in ("backend", "provider", "precision")}
        return to_uint8(result.image[..., :3])

    return run, info


def _watch(anchors: Iterator[Anchor], stats: dict) -> Iterator[Anchor]:
    for anchor in anchors:
        if anchor.cut:
            stats["cuts"].append(anchor.index)
        if anchor.dup:
            stats["dups"].append(anchor.index)
        yield anchor


def _encode_segments(frames, count: int, segment_frames: int, work: WorkFolder, reused: set, settings, fps_out,
                     size, runner, upscale, stats: dict, progress) -> None:
    """Run the schedule: interpolate (batched per pair), upscale and encode every frame of the missing segments."""

    seg_settings = replace(settings, container="mp4")  # MP4 keeps decode timestamps (B-frames) for the remux
    writer: Optional[VideoWriter] = None
    partial: Optional[Path] = None
    pending: List[tuple] = []
    done = 0

    upscaled: List[Any] = [None, None]  # the last frame upscaled and its result: a held frame is upscaled once

    def emit(rgb: np.ndarray) -> None:
        nonlocal done
        if upscale is not None:
            if upscaled[0] is not rgb:
                upscaled[:] = [rgb, upscale(rgb)]
            rgb = upscaled[1]
        writer.write(rgb)
        stats["written"] += 1
        done += 1
        if progress is not None:
            progress(done, count)

    def flush() -> None:
        if not pending:
            return
        a, b = pending[0][1], pending[0][2]
        times = [t for _, _, _, t in pending]
        pending.clear()
        for i in range(0, len(times), MAX_BATCH):
            for middle in interpolate_arrays(runner, a.as_float(), b.as_float(), times[i: i + MAX_BATCH]):
                emit(to_uint8(middle))
        stats["computed"] += len(times)

    try:
        for j, a, b, t in frames:
            k = j // segment_frames
            last = min((k + 1) * segment_frames, count) - 1
            if k in reused:  # decoded past, nothing run
                if j == last:
                    done = j + 1
                    if progress is not None:
                        progress(done, count)
                continue
            if writer is None:
                getattr(upscale, "reset", lambda: None)()  # a segment never depends on the one before
                partial = work.partial(k)
                writer = VideoWriter(partial, seg_settings, fps_out, *size)
            if pending and (b is None or pending[0][1] is not a or pending[0][2] is not b):
                flush()
            if b is None:
                emit(a.rgb)
            else:
                pending.append((j, a, b, t))
            if j == last:
                flush()
                writer.finish()
                writer.close()
                writer = None
                partial.replace(work.segment(k))
    finally:
        if writer is not None:
            writer.close()
            partial.unlink(missing_ok=True)


def _result(in_path, out_path, info, fps_out, count, settings, plans, runner, interp_model, sr_model, sr_info,
            dedup, dropped, stats, reused, segments, size, seconds) -> Dict[str, Any]:
    notes = []
    if info.vfr:
        notes.append(f"{info.vfr}: converted to a constant {float(fps_out):.4g} fps")
    streams = [p.note for p in plans]
    if stats["dups"] and interp_model:
        what = {"skip": "not interpolated across", "replace": "replaced by interpolated frames",
                "off": "interpolated as any frame"}[dedup]
        notes.append(f"{len(stats['dups'])} repeated frame(s) found, {what}"
                     + (f" ({len(dropped)} left out)" if dedup == "replace" else ""))
    if reused:
        notes.append(f"resumed: {len(reused)} of {segments} segment(s) were already done")
    backend = runner.describe() if runner is not None else sr_info.get("backend")
    return {"input": info.describe(), "output": str(out_path), "factor": float(fps_out / info.fps),
            "model": interp_model, "sr_model": sr_model, "backend": backend, "frames_in": info.frames,
            "frames_out": count,
            "frames_computed": stats["computed"], "frames_encoded": stats["written"],
            "fps_in": float(info.fps), "fps_out": float(fps_out), "fps_out_exact": str(fps_out),
            "duration_s": round(count / float(fps_out), 4), "vfr": info.vfr, "scene_cuts": stats["cuts"],
            "duplicates": stats["dups"], "dedup": dedup if interp_model else None,
            "audio": any(p.kind == "audio" and p.action != "drop" for p in plans), "streams": streams,
            "size": list(size if "420" not in settings.pix_fmt else (size[0] + size[0] % 2, size[1] + size[1] % 2)),
            "codec": settings.describe(), **settings.as_dict(), "segments": segments, "segments_reused": len(reused),
            "notes": notes, "seconds": round(seconds, 2)}
