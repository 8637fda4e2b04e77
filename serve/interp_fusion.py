"""Frame interpolation fused with a classical optical flow: `flowinterp_wide+dis`, `flowinterp+dis`.

Why: the learned interpolators are limited by their flow. OpenCV's DIS flow (coarse-to-fine, many pyramid
levels, deterministic; a few ms per 256² pair) aligns far better, above all for large motion: on Vimeo7's
frames 1 and 7 -> 4, DIS alone (both frames warped to t along the flows, Super SloMo's approximation of
the intermediate flows, blended by t) scores 31.5 dB against flowinterp_wide's 24.7. The model still wins
where DIS's two warped frames disagree (occlusions, flow errors). So the output is the model's frame moved
towards the DIS frame by c = GAIN * exp(-(d / SIGMA)^2), d = the mean |difference| of the two DIS-warped
frames after a 5x5 blur: where they agree (the flow is right) mostly DIS, where they do not the model.
GAIN and SIGMA were chosen on the held-out training clip 05_juggle (triplets at 1/2 and 1/4 resolution,
gaps 1-4), never on a benchmark (scripts/interp_fusion_tune.py).

`FusedInterpolator` wraps any backend runner of an interpolation model (same `run` / `describe`), so every
backend and every caller (pair, video, app, API) gets it by the model name + SUFFIX.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from common.dis_flow import agreement, make_flow_estimator, pair_flows, warps_at
from models.io import FRAME0, FRAME1, FRAME_OUT, TIMESTEP

SUFFIX = "+dis"
GAIN, SIGMA = 0.75, 0.4  # scripts/interp_fusion_tune.py: best for flowinterp_wide, and summed with flowinterp


def split_name(name: str) -> Optional[str]:
    """'flowinterp+dis' -> 'flowinterp'; any other name -> None."""
    return name[: -len(SUFFIX)] if isinstance(name, str) and name.endswith(SUFFIX) else None


def dis_warps(rgb0: np.ndarray, rgb1: np.ndarray, t: float, flows: Tuple[np.ndarray, np.ndarray]) -> tuple:
    """Both frames warped to time t along the DIS flows (Super SloMo's linear approximation of the flows
    from t, common.dis_flow.intermediate_flows), clipped to [0, 1]."""
    w0, w1 = warps_at(rgb0, rgb1, t, flows)
    return np.clip(w0, 0.0, 1.0), np.clip(w1, 0.0, 1.0)


def dis_only(rgb0: np.ndarray, rgb1: np.ndarray, t: float, flows: Tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The frame at t from DIS alone (no model): both warped frames cross-faded by t (evaluate's `dis` row)."""
    w0, w1 = dis_warps(rgb0, rgb1, t, flows)
    return (1 - t) * w0 + t * w1


def fuse_frame(model_frame: np.ndarray, rgb0: np.ndarray, rgb1: np.ndarray, t: float,
               flows: Tuple[np.ndarray, np.ndarray], gain: float = GAIN, sigma: float = SIGMA) -> np.ndarray:
    """The model's frame at t (HxWx3 float) moved towards the DIS frame where DIS's two warps agree."""
    w0, w1 = dis_warps(rgb0, rgb1, t, flows)
    weight = dis_weight(w0, w1, gain, sigma)
    return np.clip(model_frame + weight * ((1 - t) * w0 + t * w1 - model_frame), 0.0, 1.0)


def dis_weight(w0: np.ndarray, w1: np.ndarray, gain: float = GAIN, sigma: float = SIGMA) -> np.ndarray:
    """HxWx1 share of the DIS frame: `gain` where its two warped frames agree, less where they do not."""
    return gain * agreement(w0, w1, sigma)[..., None]


class FusedInterpolator:
    """A backend runner of an interpolation model whose outputs are fused with DIS (module docstring).
    Flows are computed once per frame pair and reused for every timestep of that pair."""

    def __init__(self, runner, name: str):
        self.runner, self.name = runner, name
        self.flow = make_flow_estimator()
        self._pair: Optional[tuple] = None  # (frame0, frame1, flows) of the last pair

    def describe(self) -> Dict[str, object]:
        return {**self.runner.describe(), "fusion": f"DIS flow (gain {GAIN}, sigma {SIGMA})"}

    def _flows(self, rgb0: np.ndarray, rgb1: np.ndarray) -> tuple:
        if self._pair is None or not (np.array_equal(self._pair[0], rgb0) and np.array_equal(self._pair[1], rgb1)):
            self._pair = (rgb0.copy(), rgb1.copy(), pair_flows(rgb0, rgb1, self.flow))
        return self._pair[2]

    def run(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        out = self.runner.run(feeds)
        frames = np.asarray(out[FRAME_OUT])
        fused = []
        for i in range(frames.shape[0]):
            rgb0, rgb1 = (np.asarray(feeds[k][i], np.float32).transpose(1, 2, 0) for k in (FRAME0, FRAME1))
            t = float(np.asarray(feeds[TIMESTEP]).reshape(-1)[i])
            model_frame = np.clip(frames[i].transpose(1, 2, 0), 0.0, 1.0)
            fused.append(fuse_frame(model_frame, rgb0, rgb1, t, self._flows(rgb0, rgb1)).transpose(2, 0, 1))
        return {**out, FRAME_OUT: np.stack(fused).astype(np.float32)}
