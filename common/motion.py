"""Synthetic frame triplets from still images, for training (train/interp_data.py) and judging
(evaluate/interpolate.py) frame interpolation.

There is no training video yet, so motion is made: a random camera path (translation, rotation,
zoom and a little perspective, each linear in time) plus 0-3 pasted patches that move on their
own (occlusions, independent motion), and a slight brightness drift. Frame tau is rendered with the
transform at tau, so frame0, the target at t and frame1 are consistent by construction. Each
triplet depends only on (seed, index): runs, resumes and the held-out BSD68 set are reproducible.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np


@dataclass
class MotionConfig:
    size: int = 128  # output crop side (square)
    max_shift: float = 12.0  # camera translation frame0 -> frame1, pixels (per axis)
    max_rotate: float = 4.0  # degrees
    max_zoom: float = 0.06  # relative scale change
    max_perspective: float = 2e-4  # homography h31/h32 over the whole gap
    max_patches: int = 3
    patch_shift: float = 14.0  # independent patch motion, pixels (per axis)
    brightness: float = 0.04  # brightness drift frame0 -> frame1
    t_mode: str = "mixed"  # "mixed" (half at 0.5, else uniform 0.1-0.9), "half" (always 0.5), or a float
    still_fraction: float = 0.0  # share of triplets with near-zero motion (real video is often almost still)


def _camera(rng: np.random.Generator, cfg: MotionConfig) -> Dict[str, np.ndarray]:
    """Motion parameters for the whole gap (frame0 -> frame1); centred so tau=0.5 is the source view."""
    return {"shift": rng.uniform(-cfg.max_shift, cfg.max_shift, 2),
            "angle": rng.uniform(-cfg.max_rotate, cfg.max_rotate),
            "zoom": rng.uniform(-cfg.max_zoom, cfg.max_zoom),
            "persp": rng.uniform(-cfg.max_perspective, cfg.max_perspective, 2) * (rng.random() < 0.5)}


def _homography(params: Dict[str, np.ndarray], tau: float, center: Tuple[float, float]) -> np.ndarray:
    """Source->frame transform at time tau in [0,1]: every parameter moves linearly from -1/2 to +1/2."""
    k = tau - 0.5
    cx, cy = center
    a = math.radians(params["angle"] * k)
    s = 1.0 + params["zoom"] * k
    rot = np.array([[s * math.cos(a), -s * math.sin(a), 0], [s * math.sin(a), s * math.cos(a), 0], [0, 0, 1]])
    to_c = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], dtype=np.float64)
    back = np.array([[1, 0, cx + params["shift"][0] * k], [0, 1, cy + params["shift"][1] * k], [0, 0, 1]])
    persp = np.array([[1, 0, 0], [0, 1, 0], [params["persp"][0] * k, params["persp"][1] * k, 1]])
    return back @ persp @ rot @ to_c


def _pick_t(rng: np.random.Generator, mode) -> float:
    if isinstance(mode, (int, float)) or (isinstance(mode, str) and mode.replace(".", "", 1).isdigit()):
        return float(mode)
    if mode == "half" or rng.random() < 0.5:
        return 0.5
    return float(rng.uniform(0.1, 0.9))


def make_triplet(image: np.ndarray, rng: np.random.Generator, cfg: MotionConfig,
                 patch_source: np.ndarray = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(frame0, frame_t, frame1, t), float32 HxWx3 in [0,1], size cfg.size, from one still image."""
    size = cfg.size
    margin = int(math.ceil(cfg.max_shift / 2 + size * (cfg.max_zoom + math.radians(cfg.max_rotate)) / 2)) + 4
    src_side = size + 2 * margin
    h, w = image.shape[:2]
    if min(h, w) < src_side:  # small image: upscale so the moving window stays inside it
        f = src_side / min(h, w) + 1e-3
        image = cv2.resize(image, (int(math.ceil(w * f)), int(math.ceil(h * f))), interpolation=cv2.INTER_CUBIC)
        h, w = image.shape[:2]
    y, x = int(rng.integers(0, h - src_side + 1)), int(rng.integers(0, w - src_side + 1))
    src = np.ascontiguousarray(image[y: y + src_side, x: x + src_side])
    if rng.random() < 0.5:
        src = src[:, ::-1].copy()
    t = _pick_t(rng, cfg.t_mode)
    cam = _camera(rng, cfg)
    center = (src_side / 2.0, src_side / 2.0)
    offset = np.array([[1, 0, -margin], [0, 1, -margin], [0, 0, 1]], dtype=np.float64)
    patches = _patches(rng, cfg, patch_source if patch_source is not None else src)
    if cfg.still_fraction > 0 and rng.random() < cfg.still_fraction:  # (no draw when 0: old streams unchanged)
        k = rng.uniform(0.0, 0.1)
        cam = {key: value * k for key, value in cam.items()}
        patches = [(patch, alpha, pos, vel * k) for patch, alpha, pos, vel in patches]
    gain = 1.0 + rng.uniform(-0.1, 0.1)
    drift = rng.uniform(-cfg.brightness, cfg.brightness)
    frames = []
    for tau in (0.0, t, 1.0):
        mat = offset @ _homography(cam, tau, center)
        frame = cv2.warpPerspective(src, mat, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        for patch, alpha, pos, vel in patches:
            _paste(frame, patch, alpha, pos + vel * tau)
        frames.append(np.clip(frame * (gain + drift * (tau - 0.5)), 0.0, 1.0).astype(np.float32))
    return frames[0], frames[1], frames[2], t


def _patches(rng: np.random.Generator, cfg: MotionConfig, source: np.ndarray) -> List[tuple]:
    """Independently moving patches: (rgb, soft alpha, start xy, velocity xy over the gap)."""
    out = []
    for _ in range(int(rng.integers(0, cfg.max_patches + 1))):
        ph, pw = (int(v) for v in rng.integers(max(8, cfg.size // 8), max(9, cfg.size // 3), 2))
        sy, sx = int(rng.integers(0, source.shape[0] - ph + 1)), int(rng.integers(0, source.shape[1] - pw + 1))
        patch = source[sy: sy + ph, sx: sx + pw].copy()
        alpha = np.zeros((ph, pw), np.float32)
        if rng.random() < 0.5:
            cv2.ellipse(alpha, (pw // 2, ph // 2), (pw // 2, ph // 2), 0, 0, 360, 1.0, -1)
        else:
            alpha[:] = 1.0
        start = rng.uniform(-pw / 2, cfg.size - pw / 2, 2)
        vel = rng.uniform(-cfg.patch_shift, cfg.patch_shift, 2)
        out.append((patch, alpha, start, vel))
    return out


def _paste(frame: np.ndarray, patch: np.ndarray, alpha: np.ndarray, xy: np.ndarray) -> None:
    """Alpha-composite patch at sub-pixel position xy (in place), clipped to the frame."""
    ph, pw = alpha.shape
    ix, iy = int(math.floor(xy[0])), int(math.floor(xy[1]))
    shift = np.float32([[1, 0, xy[0] - ix], [0, 1, xy[1] - iy]])
    p = cv2.warpAffine(patch, shift, (pw + 1, ph + 1), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = cv2.warpAffine(alpha, shift, (pw + 1, ph + 1), flags=cv2.INTER_LINEAR, borderValue=0)[..., None]
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = max(ix, 0), max(iy, 0), min(ix + pw + 1, w), min(iy + ph + 1, h)
    if x1 <= x0 or y1 <= y0:
        return
    region = (slice(y0 - iy, y1 - iy), slice(x0 - ix, x1 - ix))
    frame[y0:y1, x0:x1] = frame[y0:y1, x0:x1] * (1 - a[region]) + p[region] * a[region]


def heldout_triplets(images: Sequence[np.ndarray], size: int = 256, seed: int = 2024, t: float = 0.5) -> list:
    """Fixed evaluation triplets (one per image, t=0.5 unless given) for the synthetic benchmark set."""
    cfg = MotionConfig(size=size, max_shift=16.0, patch_shift=16.0, t_mode=t)
    return [make_triplet(img, np.random.default_rng([seed, i]), cfg) for i, img in enumerate(images)]


def make_sequence(image: np.ndarray, rng: np.random.Generator, cfg: MotionConfig, frames: int,
                  patch_source: np.ndarray = None) -> List[np.ndarray]:
    """`frames` float32 HxWx3 frames along one smooth camera path (cfg's motion spans the whole clip)
    with moving patches: the synthetic half of video-SR training (train/vsr_data.py)."""
    size = cfg.size
    margin = int(math.ceil(cfg.max_shift / 2 + size * (cfg.max_zoom + math.radians(cfg.max_rotate)) / 2)) + 4
    src_side = size + 2 * margin
    h, w = image.shape[:2]
    if min(h, w) < src_side:
        f = src_side / min(h, w) + 1e-3
        image = cv2.resize(image, (int(math.ceil(w * f)), int(math.ceil(h * f))), interpolation=cv2.INTER_CUBIC)
        h, w = image.shape[:2]
    y, x = int(rng.integers(0, h - src_side + 1)), int(rng.integers(0, w - src_side + 1))
    src = np.ascontiguousarray(image[y: y + src_side, x: x + src_side])
    cam = _camera(rng, cfg)
    center = (src_side / 2.0, src_side / 2.0)
    offset = np.array([[1, 0, -margin], [0, 1, -margin], [0, 0, 1]], dtype=np.float64)
    patches = _patches(rng, cfg, patch_source if patch_source is not None else src)
    out = []
    for tau in np.linspace(0.0, 1.0, frames):
        frame = cv2.warpPerspective(src, offset @ _homography(cam, float(tau), center), (size, size),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        for patch, alpha, pos, vel in patches:
            _paste(frame, patch, alpha, pos + vel * tau)
        out.append(np.clip(frame, 0.0, 1.0).astype(np.float32))
    return out
