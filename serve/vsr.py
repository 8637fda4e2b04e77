"""Multi-frame video SR at serving time: the recurrent step model (models/vsr.py) run frame after frame.

Any backend runs the one-step graph (lr, prev_lr, hidden) -> (sr, hidden_out); this module carries the
hidden features from frame to frame, so memory stays one frame's worth whatever the clip's length.
Propagation restarts (zero hidden, prev = current) at the first frame, at every scene cut (the
interpolation's detector, serve.interp_core.is_scene_cut: features of another shot would ghost in) and
when `reset()` is called (serve.video_job: at each segment start, so a resumed job gives the same frames).
There is no tiling (the hidden state spans the frame), hence a frame-size cap of its own.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np

from common.images import to_uint8
from models import get_spec
from models.io import HIDDEN, HIDDEN_OUT, LR, PREV_LR, SR

from .contract import InputError
from .interp_core import is_scene_cut, thumbnail
from .runtime import get_backend

MAX_FRAME_PIXELS = 1280 * 720  # input frame: 64 hidden channels of it are ~240 MB, its x4 output 14.7 MP


def is_video_sr(model_name: str) -> bool:
    return bool(get_spec(model_name).recurrent_hidden)


class VideoUpscaler:
    """Feed frames in order (HxWx3 uint8 or float [0,1]); each call returns that frame upscaled, uint8."""

    def __init__(self, model_name: str, backend: str = "auto", precision: str = "fp32",
                 max_frame_pixels: int = MAX_FRAME_PIXELS, **backend_options):
        spec = get_spec(model_name)
        if not spec.recurrent_hidden:
            raise InputError(f"'{model_name}' is a per-frame {spec.task} model, not a multi-frame video SR model")
        self.spec = spec
        precision = "fp32" if str(precision).split()[-1] in ("int8", "auto") else precision  # int8 is per-frame only
        self.runner = get_backend(model_name, backend, precision=precision, **backend_options)
        self.max_frame_pixels = max_frame_pixels
        self.cuts: List[int] = []
        self.frames = 0
        self.reset()

    def reset(self) -> None:
        """Forget the previous frames: the next frame starts the propagation afresh."""
        self._prev: Optional[np.ndarray] = None
        self._thumb: Optional[np.ndarray] = None
        self._hidden: Optional[np.ndarray] = None

    def describe(self) -> Dict[str, Any]:
        return self.runner.describe()

    def _check(self, rgb: np.ndarray) -> np.ndarray:
        arr = np.asarray(rgb)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise InputError(f"frame {self.frames}: expected an HxWx3 RGB frame, got shape {arr.shape}")
        h, w = arr.shape[:2]
        if min(h, w) < self.spec.min_size:
            raise InputError(f"frame {self.frames}: {w}x{h} is too small (sides of at least {self.spec.min_size})")
        if h * w > self.max_frame_pixels:
            raise InputError(f"frame {self.frames}: {w}x{h} is over the multi-frame model's limit of "
                             f"{self.max_frame_pixels / 1e6:.2f} MP per frame (it does not tile); use per-frame SR")
        if self._prev is not None and self._prev.shape[1:] != (3, h, w):
            ph, pw = self._prev.shape[2:]
            raise InputError(f"frame {self.frames}: the frame size changes ({pw}x{ph} -> {w}x{h}); "
                             "a clip must keep one size")
        scale = 255.0 if arr.dtype == np.uint8 else 1.0
        return np.ascontiguousarray(arr.astype(np.float32).transpose(2, 0, 1)[None] / scale)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        x = self._check(rgb)
        thumb = thumbnail(np.asarray(rgb))
        restart = self._prev is None
        if not restart and is_scene_cut(self._thumb, thumb):
            restart = True
            self.cuts.append(self.frames)
        if restart:
            self._prev = x
            self._hidden = np.zeros((1, self.spec.recurrent_hidden, x.shape[2], x.shape[3]), np.float32)
        out = self.runner.run({LR: x, PREV_LR: self._prev, HIDDEN: self._hidden})
        self._prev, self._thumb, self._hidden = x, thumb, out[HIDDEN_OUT]
        self.frames += 1
        return to_uint8(np.clip(out[SR][0].transpose(1, 2, 0), 0.0, 1.0))


def upscale_clip(frames: Sequence[np.ndarray], model_name: str = "vsr_x4", backend: str = "auto",
                 **options) -> List[np.ndarray]:
    """Every frame of a clip (a list of HxWx3 frames of one size) upscaled with propagation; InputError
    for an empty clip, frames of changing size or frames over the size limit."""
    if len(frames) == 0:
        raise InputError("the clip has no frames")
    shapes = {np.asarray(f).shape for f in frames}
    if len(shapes) > 1:
        first = np.asarray(frames[0]).shape
        bad = next(i for i, f in enumerate(frames) if np.asarray(f).shape != first)
        raise InputError(f"frame {bad} is {np.asarray(frames[bad]).shape[1]}x{np.asarray(frames[bad]).shape[0]}, "
                         f"frame 0 is {first[1]}x{first[0]}: every frame of a clip must have one size")
    upscaler = VideoUpscaler(model_name, backend, **options)
    return [upscaler(f) for f in frames]


def upscaled_anchors(anchors: Iterator, upscale: VideoUpscaler) -> Iterator:
    """serve.video_job's source frames (its Anchors) replaced by their video-SR output, in order: SR first,
    then interpolation at HR (the order scripts/vsr_spacetime.py measured better). Every source frame is
    run, also the ones a resumed job skips, so the propagation and the output are the same either way."""
    for anchor in anchors:
        anchor.rgb, anchor._float = upscale(anchor.rgb), None
        yield anchor
