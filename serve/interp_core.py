"""What pair and video interpolation share: one batched model call for many timesteps, the model's
backend, and the scene-cut test (serve.interpolate and serve.video_job both build on it)."""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from models import get_spec
from models.io import FRAME0, FRAME1, FRAME_OUT, TIMESTEP

from .runtime import get_backend

CUT_HIST_DISTANCE = 0.30  # half L1 distance of 32-bin grey histograms, in [0, 1]
CUT_MEAN_DIFF = 0.15  # mean absolute grey difference of 64-px thumbnails, in [0, 1]
# (on UCF101: 0 of 379 real frame pairs flagged, 376 of 378 cross-video pairs caught)


# flowinterp_wide is 0.2-0.9 dB better (README: Frame interpolation) but not the default: on a 2 MP x4 pair it
# peaks 0.62 GB higher (1.88 against 1.26 GB), which the server's memory bound (measured with flowinterp, 55 MB
# under 3 GB) has no room for, and on video it is 2.6-3x slower. It is one dropdown choice away.
# The default is flowinterp fused with DIS flow (serve.interp_fusion): better on every benchmark set
# (README: Fusion with a classical flow) for a few ms per pair.
DEFAULT_INTERPOLATOR = "flowinterp+dis"  # two frames
VIDEO_INTERPOLATOR = DEFAULT_INTERPOLATOR  # videos
BATCH_PIXELS = 2_000_000  # frame pixels x timesteps per backend call: ~1 GB of flow-net activations


def interpolate_arrays(runner, rgb0: np.ndarray, rgb1: np.ndarray, times: Sequence[float]) -> List[np.ndarray]:
    """All timesteps of a pair in as few backend calls as the memory bound allows (a batch of the
    frames repeated); large frames go one timestep per call."""
    per_call = max(1, BATCH_PIXELS // max(1, rgb0.shape[0] * rgb0.shape[1]))
    frames: List[np.ndarray] = []
    for start in range(0, len(times), per_call):
        chunk = times[start:start + per_call]
        n = len(chunk)
        x0 = np.repeat(rgb0.transpose(2, 0, 1)[None], n, axis=0)
        x1 = np.repeat(rgb1.transpose(2, 0, 1)[None], n, axis=0)
        t = np.asarray(chunk, dtype=np.float32).reshape(n, 1, 1, 1)
        out = runner.run({FRAME0: x0, FRAME1: x1, TIMESTEP: t})[FRAME_OUT]
        frames += [np.ascontiguousarray(np.clip(o.transpose(1, 2, 0), 0.0, 1.0)) for o in out]
    return frames


def interp_backend(model_name: str, backend: str, precision: str = "fp32", **backend_options):
    """The interpolator's backend; int8 applies to SR only, so an interpolator asked for it runs fp32.
    MODEL+dis: the model's backend wrapped in serve.interp_fusion.FusedInterpolator (DIS flow fusion)."""
    from .interp_fusion import FusedInterpolator, split_name

    base = split_name(model_name) or model_name
    spec = get_spec(base)
    if not spec.timestep_input:
        raise ValueError(f"'{model_name}' is a {spec.task} model, not a frame interpolator")
    precision = "fp32" if str(precision).split()[-1] == "int8" else precision
    runner = get_backend(base, backend, precision=precision, **backend_options)
    return FusedInterpolator(runner, model_name) if base != model_name else runner


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    import cv2

    grey = rgb.astype(np.float32).mean(axis=2) / (255.0 if rgb.dtype == np.uint8 else 1.0)
    width = 64
    height = max(1, round(grey.shape[0] * width / grey.shape[1]))
    return cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA)


def is_scene_cut(thumb0: np.ndarray, thumb1: np.ndarray) -> bool:
    """True when two frames (as `thumbnail`s) belong to different shots: morphing them makes ghosts."""
    h0 = np.histogram(thumb0, bins=32, range=(0.0, 1.0))[0] / thumb0.size
    h1 = np.histogram(thumb1, bins=32, range=(0.0, 1.0))[0] / thumb1.size
    hist_distance = 0.5 * float(np.abs(h0 - h1).sum())
    mean_diff = float(np.abs(thumb0 - thumb1).mean())
    return hist_distance > CUT_HIST_DISTANCE or mean_diff > CUT_MEAN_DIFF
