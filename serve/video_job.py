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
An SR model name + '+fusion' (serve.vsr_fusion: per-frame SR fused with its 6 neighbours along the motion)
always upscales the source frames, 3 frames behind the decoder, before any interpolation.

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
Scheduling (anchors, output rate and count, which frames make each output frame): serve.video_schedule.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

import numpy as np

from common.images import to_uint8

from .contract import InputError
from .interp_core import VIDEO_INTERPOLATOR, interp_backend, interpolate_arrays
from .video_encode import DEFAULT_ENCODER, DEFAULT_PIX_FMT, VideoWriter, choose_encoder
from .video_io import probe
from .video_schedule import Anchor, drop_repeats, output_count, output_rate, read_anchors, schedule
from .video_streams import assemble, plan_streams
from .vsr import upscaled_anchors
from .vsr_fusion import FusionUpscaler, back_projects, fused_anchors, split_name, sr_scale

PathLike = Union[str, os.PathLike]
DEFAULT_SEGMENT_FRAMES = 240
DEDUP_MODES = ("off", "skip", "replace")
MAX_BATCH = 4  # timesteps per interpolation call


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
                  interp_model: Optional[str] = VIDEO_INTERPOLATOR, sr_model: Optional[str] = None,
                  backend: str = "auto",
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
        upscale, sr_info = _sr_stage(sr_model, backend, {"precision": precision, **(sr_options or {})})
        width, height = width * sr_scale(sr_model), height * sr_scale(sr_model)
    count = output_count(info, fps_out)
    plans = plan_streams(in_path, settings.container, keep_audio=keep_audio, keep_subtitles=keep_subtitles)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    record = _job_record(in_path, fps_out, count, (width, height), settings, interp=interp_model if interpolate
                         else None, sr=sr_model, dedup=dedup if interpolate else None, segment=segment_frames,
                         weights=backend_options.get("weights_path"), backend=backend, precision=precision)
    work = WorkFolder(out_path, record, resume)
    segments = [work.segment(k) for k in range(math.ceil(count / segment_frames))]
    reused = [k for k, seg in enumerate(segments) if work.resumed and seg.is_file()]
    dropped: List[int] = []
    stats = {"computed": 0, "written": 0, "cuts": [], "dups": []}
    try:
        anchors = _watch(read_anchors(in_path, info, detect=interpolate), stats)
        if interpolate and dedup == "replace":
            anchors = drop_repeats(anchors, dropped)
        if isinstance(upscale, FusionUpscaler):  # needs the neighbours: the source frames, before anything else
            anchors, upscale = fused_anchors(anchors, upscale), None
        elif interpolate and hasattr(upscale, "reset"):  # video SR: upscale the source frames, interpolate at HR
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
        if not resume or not any(work.path.glob("seg_?????.mp4")):  # nothing finished: nothing to resume from
            shutil.rmtree(work.path, ignore_errors=True)
        raise
    shutil.rmtree(work.path, ignore_errors=True)
    return _result(in_path, out_path, info, fps_out, count, settings, plans, runner, interp_model if interpolate
                   else None, sr_model, sr_info, dedup, dropped, stats, reused, len(segments), (width, height),
                   time.perf_counter() - started)


def _sr_stage(sr_model: str, backend: str, options: dict):
    """A frame -> upscaled uint8 frame function, and a dict that holds the last call's backend info."""
    from models import REGISTRY, get_spec

    from .sr import upscale

    per_frame = split_name(sr_model)
    if per_frame is not None:  # per-frame SR of any backend, fused over neighbouring frames
        if per_frame not in REGISTRY or get_spec(per_frame).task != "sr":
            raise InputError(f"'{sr_model}': multi-frame fusion needs a per-frame SR model before '+fusion'")
        run, info = _sr_stage(per_frame, backend, options)
        return FusionUpscaler(run, sr_scale(per_frame), back_project=back_projects(per_frame)), info
    if sr_model not in REGISTRY:
        raise InputError(f"unknown SR model '{sr_model}'")
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
