"""Multi-frame video SR by motion-compensated fusion: every frame is upscaled on its own by any SR model,
then each output frame is the confidence-weighted mean of its own SR and its neighbours' SR warped onto it.

Why: a video holds the same detail in several frames, each sampled at another sub-pixel phase, so the
per-frame SR errors differ between frames and partly cancel once the frames are aligned. The alignment
decides everything: FlowInterp's flow blocks (what the recurrent `vsr_x4` aligns with) leave a warping
error of 3.05 (0-255, HR frames one apart, training videos) against 1.86 for OpenCV's DIS flow
(scripts/vsr_fusion_tune.py), and with their flow the fusion loses PSNR instead of gaining. So the flow
here is DIS (medium preset; classical coarse-to-fine, deterministic, about 14 ms per 448x256 pair),
computed on the LR frames bicubic-upscaled to the output size; the warp is bicubic. A neighbour counts
where it agrees with the frame's own SR at the input's resolution (weight exp(-(d / sigma)^2), d = the
mean |difference| of both area-downscaled by the scale), so occlusions and flow errors fall back to the
per-frame result; neighbours across a scene cut (serve.interp_core's detector) or outside the clip are
not used. Then one back-projection step makes the fused frame consistent with its own LR frame again
(only for models trained on plain bicubic LR: for the real-photo models it would bring the noise back).

The radius (3), sigma (0.02 with the back-projection, 0.01 without), DIS preset and the back-projection
were chosen on the training videos, never on the benchmark clips (scripts/vsr_fusion_tune.py: +0.158 dB
over per-frame flashsr_x4 there; +0.063 without the back-projection).

Streaming: `push(frame)` returns the outputs that became final (frame i is final once frame i + radius
has arrived, or at a cut), `flush()` the rest; at most 2 * radius + 1 frames are held (SR as uint8, and
the two flows to the neighbouring frames): a 3840x2160 output, the largest accepted (MAX_OUTPUT_PIXELS),
peaked at 2.35 GB RSS for the whole process, about 13 s per frame on the 2-core CPU (fusion alone).
"""
from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from common.dis_flow import grey_uint8, make_flow_estimator, warp
from common.images import to_uint8

from .contract import InputError
from .interp_core import is_scene_cut, thumbnail

RADIUS = 3  # neighbours on each side
# agreement scale of the confidence at the input's resolution, in [0, 1] units: with the back-projection
# step (which repairs part of a wrong neighbour's harm) a laxer one pays (scripts/vsr_fusion_tune.py)
SIGMA, SIGMA_BACK_PROJECTED = 0.01, 0.02
SUFFIX = "+fusion"  # "flashsr_x4+fusion": the per-frame model with multi-frame fusion
# offered in the app: the pixel-loss FlashSR models (a GAN's invented texture differs from frame to frame,
# so its neighbours disagree and mostly go unused); the CLI and API take any SR model + SUFFIX
OFFERED = ("flashsr_x4", "flashsr_x2", "flashsr_real_x4", "flashsr_real_x2")
MAX_OUTPUT_PIXELS = 3840 * 2160  # 2 * radius + 1 output frames and their flows are held


def split_name(name: str) -> Optional[str]:
    """'flashsr_x4+fusion' -> 'flashsr_x4'; any other name -> None."""
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) else None


def sr_scale(name: str) -> int:
    """The scale of an SR model name, with or without the fusion suffix."""
    from models import get_spec

    return get_spec(split_name(name) or name).scale


def guide(lr: np.ndarray, size_hw: Sequence[int]) -> np.ndarray:
    """The grey uint8 frame flow is computed on: the LR frame bicubic-upscaled to the output size."""
    rgb = lr if lr.dtype == np.uint8 else to_uint8(np.clip(lr, 0.0, 1.0))
    return grey_uint8(cv2.resize(rgb, (int(size_hw[1]), int(size_hw[0])), interpolation=cv2.INTER_CUBIC))


def compose(first: np.ndarray, then: np.ndarray) -> np.ndarray:
    """Flow a -> c from a -> b (`first`) and b -> c (`then`): sampling c at x + result gives a."""
    return first + warp(then, first)[0]


def fuse(centre: np.ndarray, neighbours: Iterable[Tuple[np.ndarray, np.ndarray]], scale: int,
         sigma: float = SIGMA_BACK_PROJECTED) -> np.ndarray:
    """Confidence-weighted mean of `centre` (HxWx3 float32 in [0, 1]) and the neighbours (frame: float in
    [0, 1] or uint8; flow centre -> frame) warped onto it, taken one (frame, flow) pair at a time.

    Agreement is judged at the input's resolution (both area-downscaled by `scale`): there a correctly
    aligned neighbour matches the centre to within the SR's own small errors, while a misaligned one
    (occlusion, wrong flow, flat areas where DIS guesses) does not, even where the difference is a few
    grey levels (in a sky at 46 dB, a check after a 5x5 blur at full size let those through and lost 2.3 dB)."""
    h, w = centre.shape[:2]
    small = (max(1, w // scale), max(1, h // scale))
    own = cv2.resize(centre, small, interpolation=cv2.INTER_AREA)
    total, weight = centre.copy(), np.ones((h, w, 1), np.float32)
    for frame, flow in neighbours:
        frame = frame.astype(np.float32) / 255.0 if frame.dtype == np.uint8 else frame
        warped, inside = warp(frame, flow)
        np.clip(warped, 0.0, 1.0, out=warped)
        diff = np.abs(cv2.resize(warped, small, interpolation=cv2.INTER_AREA) - own).mean(-1)
        diff = cv2.resize(diff, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
        confidence = np.exp(-np.square(diff / sigma)) * inside[..., None]
        total += confidence * warped
        weight += confidence
    return total / weight


def bicubic_down(image: np.ndarray, scale: int) -> np.ndarray:
    """HxWx3 float -> (H/scale)x(W/scale)x3 float by PIL's antialiased bicubic, in float (no 8-bit rounding):
    the degradation the benchmark and the bicubic-trained models assume."""
    h, w = image.shape[:2]
    size = (max(1, w // scale), max(1, h // scale))
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c]), "F").resize(size, Image.BICUBIC))
                     for c in range(image.shape[2])], -1)


def back_project(image: np.ndarray, lr: np.ndarray, scale: int) -> np.ndarray:
    """One back-projection step: add the bicubic-upscaled difference between the LR frame and `image`
    downscaled, so the fused frame is again consistent with its own input (averaging neighbours moves
    it a little away; on a single frame's SR the step adds about 0.01 dB, after fusion 0.06-0.1 dB)."""
    h, w = image.shape[:2]
    residual = lr[: h // scale, : w // scale] - bicubic_down(image, scale)
    return np.clip(image + cv2.resize(residual, (w, h), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def back_projects(model_name: str) -> bool:
    """Back-project only for models trained on plain bicubic LR (flashsr_x4, ...): for the real-photo
    models (denoise strength) and GANs it would pull the noise and blur of the input back in."""
    from models import get_spec

    spec = get_spec(model_name)
    return spec.task == "sr" and not spec.adversarial and not spec.scalar_inputs


class FusionUpscaler:
    """Feed LR frames in order with `push`; outputs (uint8, in order) come back from `push` and `flush`.

    `upscale_frame(rgb) -> HxWx3 uint8` is the per-frame SR (serve.video_job builds it for any backend)."""

    def __init__(self, upscale_frame: Callable[[np.ndarray], np.ndarray], scale: int, radius: int = RADIUS,
                 sigma: Optional[float] = None, back_project: bool = True,
                 max_output_pixels: int = MAX_OUTPUT_PIXELS):
        sigma = sigma if sigma is not None else SIGMA_BACK_PROJECTED if back_project else SIGMA
        if radius < 0 or sigma <= 0:
            raise ValueError("radius must be >= 0 and sigma > 0")
        self.upscale_frame, self.scale, self.radius, self.sigma = upscale_frame, scale, radius, sigma
        self.back_project = back_project
        self.max_output_pixels = max_output_pixels
        self.flow = make_flow_estimator()
        self.frames = 0  # pushed so far
        self.cuts: List[int] = []
        self._held: OrderedDict[int, dict] = OrderedDict()  # index -> sr, lr, guide, shot, to_prev, to_next
        self._shot = 0
        self._thumb: Optional[np.ndarray] = None
        self._shape: Optional[tuple] = None
        self._next_out = 0

    def reset(self) -> None:
        """Forget the frames held (nothing pending is emitted: call flush first)."""
        self._held.clear()
        self._thumb, self._shape, self._next_out = None, None, self.frames

    def _check(self, rgb: np.ndarray) -> np.ndarray:
        arr = np.asarray(rgb)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise InputError(f"frame {self.frames}: expected an HxWx3 RGB frame, got shape {arr.shape}")
        h, w = arr.shape[:2]
        if h * w * self.scale ** 2 > self.max_output_pixels:
            raise InputError(f"frame {self.frames}: {w}x{h} upscaled x{self.scale} is over the multi-frame "
                             f"limit of {self.max_output_pixels / 1e6:.1f} MP per output frame; use per-frame SR")
        if self._shape is not None and arr.shape != self._shape:
            raise InputError(f"frame {self.frames}: the frame size changes ({self._shape[1]}x{self._shape[0]} -> "
                             f"{w}x{h}); a clip must keep one size")
        return arr

    def push(self, rgb: np.ndarray) -> List[np.ndarray]:
        arr = self._check(rgb)
        thumb = thumbnail(arr)
        ready: List[np.ndarray] = []
        if self._thumb is not None and is_scene_cut(self._thumb, thumb):
            self.cuts.append(self.frames)
            ready = self._emit(until=self.frames)  # the old shot's frames have all their neighbours now
            self._shot += 1
        sr = np.asarray(self.upscale_frame(arr))
        entry = {"sr": sr, "lr": arr, "guide": guide(arr, sr.shape[:2]), "shot": self._shot}
        before = self._held.get(self.frames - 1)
        if before is not None and before["shot"] == self._shot:  # flows between consecutive frames only
            entry["to_prev"] = self.flow(entry["guide"], before["guide"])
            before["to_next"] = self.flow(before["guide"], entry["guide"])
        self._held[self.frames] = entry
        self._shape, self._thumb = arr.shape, thumb
        self.frames += 1
        return ready + self._emit(until=self.frames - self.radius)

    def flush(self) -> List[np.ndarray]:
        """The outputs still held (the clip's last `radius` frames)."""
        return self._emit(until=self.frames)

    def _emit(self, until: int) -> List[np.ndarray]:
        out = []
        while self._next_out < until and self._next_out in self._held:
            out.append(self._fused(self._next_out))
            self._next_out += 1
            for old in [i for i in self._held if i < self._next_out - self.radius]:
                del self._held[old]
        return out

    def _neighbours(self, index: int) -> Iterator[tuple]:
        """(neighbour's SR, flow index -> neighbour) of the same shot, nearest first; a flow k frames away
        is the chain of the k consecutive ones (1/3 of the DIS work of direct flows; on the training
        windows -0.006 dB, scripts/vsr_fusion_tune.py)."""
        for step, key in ((1, "to_next"), (-1, "to_prev")):
            flow = None
            for k in range(1, self.radius + 1):
                here = self._held.get(index + step * (k - 1))
                there = self._held.get(index + step * k)
                if here is None or there is None or key not in here:
                    break
                flow = here[key] if flow is None else compose(flow, here[key])
                yield there["sr"], flow

    def _fused(self, index: int) -> np.ndarray:
        own = self._held[index]
        pairs = self._neighbours(index)  # lazily: one chained flow at a time in memory
        first = next(pairs, None)
        if first is None:
            return own["sr"]
        fused = fuse(own["sr"].astype(np.float32) / 255.0, itertools.chain([first], pairs), self.scale, self.sigma)
        if self.back_project:
            lr = own["lr"].astype(np.float32) / (255.0 if own["lr"].dtype == np.uint8 else 1.0)
            fused = back_project(fused, lr, self.scale)
        return to_uint8(fused)


def fuse_clip(frames: Sequence[np.ndarray], upscale_frame: Callable[[np.ndarray], np.ndarray], scale: int,
              **options) -> List[np.ndarray]:
    """Every frame of a clip upscaled with multi-frame fusion (uint8); InputError for an empty clip."""
    if len(frames) == 0:
        raise InputError("the clip has no frames")
    fuser = FusionUpscaler(upscale_frame, scale, **options)
    out: List[np.ndarray] = []
    for frame in frames:
        out += fuser.push(frame)
    return out + fuser.flush()


def fused_anchors(anchors: Iterator, fuser: FusionUpscaler) -> Iterator:
    """serve.video_job's source frames (its Anchors) replaced by their fused SR, in order, `radius` frames
    behind the decoder. Every source frame is run, also the ones a resumed job skips, so the output is
    the same either way."""
    waiting: deque = deque()

    def finished(outputs):
        for rgb in outputs:
            anchor = waiting.popleft()
            anchor.rgb, anchor._float = rgb, None
            yield anchor

    for anchor in anchors:
        waiting.append(anchor)
        yield from finished(fuser.push(anchor.rgb))
    yield from finished(fuser.flush())
