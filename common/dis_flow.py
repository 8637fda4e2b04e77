"""OpenCV's DIS optical flow and a bicubic backward warp: what the multi-frame video SR fusion
(serve.vsr_fusion) and the interpolation fusion (serve.interp_fusion) align frames with, and the flow
targets train.interpolate can distil into a learned interpolator.

DIS (Kroeger et al. 2016, "Fast Optical Flow using Dense Inverse Search") is a classical coarse-to-fine
method, deterministic and a few ms per 448x256 pair; on the training videos it warps 1.6x more
accurately than FlowInterp's learned flow blocks (scripts/vsr_fusion_tune.py).
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
           "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
PRESET = "medium"
MIN_SIDE = 16  # DIS raises on small frames (8x8, 13x5, 1x100 ...): narrower frames are edge-padded to this


def make_flow_estimator(preset: str = PRESET) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """f(grey_a, grey_b) -> flow (HxWx2, px) such that sampling b at x + flow gives a (OpenCV's DIS).
    Frames under MIN_SIDE px a side are edge-padded for DIS and the flow cropped back."""
    if preset not in PRESETS:
        raise ValueError(f"unknown DIS preset {preset!r}; use one of {', '.join(PRESETS)}")
    dis = cv2.DISOpticalFlow_create(PRESETS[preset])

    def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        h, w = a.shape[:2]
        if min(h, w) >= MIN_SIDE:
            return dis.calc(a, b, None)
        pad = ((0, max(0, MIN_SIDE - h)), (0, max(0, MIN_SIDE - w)))
        return np.ascontiguousarray(dis.calc(np.pad(a, pad, mode="edge"), np.pad(b, pad, mode="edge"), None)[:h, :w])

    return flow


def warp(img: np.ndarray, flow: np.ndarray) -> tuple:
    """(img sampled at x + flow, bicubic; mask of the positions inside the frame)."""
    h, w = flow.shape[:2]
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), -1) + flow
    out = cv2.remap(img, grid[..., 0], grid[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    inside = (grid[..., 0] >= 0) & (grid[..., 0] <= w - 1) & (grid[..., 1] >= 0) & (grid[..., 1] <= h - 1)
    return out, inside


def intermediate_flows(f01: np.ndarray, f10: np.ndarray, t: float) -> tuple:
    """(F_t->0, F_t->1) from the flows between the frames, by Super SloMo's linear approximation:
    F_t->0 = -t(1-t) F0->1 + t^2 F1->0, F_t->1 = (1-t)^2 F0->1 - t(1-t) F1->0 (sampling frame k at
    x + F_t->k gives the frame at t)."""
    return -t * (1 - t) * f01 + t * t * f10, (1 - t) * (1 - t) * f01 - t * (1 - t) * f10


def grey_uint8(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8, or float in [0, 1] -> the grey uint8 frame DIS reads."""
    if rgb.dtype != np.uint8:
        rgb = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def pair_flows(rgb0: np.ndarray, rgb1: np.ndarray, flow=None) -> tuple:
    """(F0->1, F1->0) by DIS: sampling frame 1 at x + F0->1 gives frame 0, and the other way round."""
    flow = flow or make_flow_estimator()
    g0, g1 = grey_uint8(rgb0), grey_uint8(rgb1)
    return flow(g0, g1), flow(g1, g0)


def warps_at(rgb0: np.ndarray, rgb1: np.ndarray, t: float, flows: tuple) -> tuple:
    """Both frames (HxWx3 float) warped to time t along the flows between them (not clipped)."""
    to0, to1 = intermediate_flows(*flows, t)
    return warp(rgb0.astype(np.float32), to0)[0], warp(rgb1.astype(np.float32), to1)[0]


def agreement(w0: np.ndarray, w1: np.ndarray, sigma: float) -> np.ndarray:
    """HxW exp(-(d / sigma)^2), d = the mean |w0 - w1| over channels after a 5x5 blur: near 1 where the two
    warped frames agree (the flow is right), near 0 at occlusions and flow errors."""
    return np.exp(-np.square(cv2.GaussianBlur(np.abs(w0 - w1).mean(-1), (5, 5), 0) / sigma))
