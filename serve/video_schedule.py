"""Frame scheduling for video jobs (serve.video_job): decoded source frames on the input timeline
(`Anchor`, with scene-cut and repeated-frame flags), the output rate and frame count, and which source
frames (and t) make each output frame. Output frame j sits at time j / fps_out; see serve.video_job.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator, List, Optional, Union

import numpy as np

from .contract import InputError
from .interp_core import is_scene_cut, thumbnail
from .video_io import VideoInfo, read_frames, snap_rate

PathLike = Union[str, os.PathLike]
MIN_FPS, MAX_FPS = 1, 240
MAX_FACTOR = 16
DUP_MEAN_DIFF = 0.004  # mean |grey difference| of 64-px thumbnails below which a frame repeats the last (in [0,1])
DUP_MAX_DIFF = 0.04  # ... and no thumbnail pixel moves more than this (a small object moving is not a repeat)
DUP_MAX_RUN = 3  # longer runs of repeats are a still shot, not a repeated frame
TIME_EPS = 1e-3  # t this close to 0 or 1 copies the source frame


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


def read_anchors(path: PathLike, info: VideoInfo, detect: bool) -> Iterator[Anchor]:

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


def drop_repeats(anchors: Iterator[Anchor], dropped: List[int]) -> Iterator[Anchor]:
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
