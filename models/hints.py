"""Colour hints as the hint colorizer's tensors (models/colorize_hint.py), shared by serve, evaluate, train.

A hint is (x, y, colour): a pixel position in the image the user sees (x right, y down, 0-based) and
an sRGB colour in [0, 1]. Only the colour's chroma (Lab a, b) is used: the photo's own lightness is
kept. Each hint paints a square of HINT_PATCH pixels at the model's resolution (the patch sizes the
model was trained with are 1..9 px). Where hints overlap, the later one wins. Checking user input
(range, count, colour inputs) is serve's job (serve/colorize_hints.py); this module only encodes.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from common.lab import AB_RANGE

HINT_PATCH = 5
Hint = Tuple[float, float, Tuple[float, float, float]]


def rgb_to_ab(colours: np.ndarray) -> np.ndarray:
    """(K,3) sRGB in [0,1] -> (K,2) Lab a, b (D65; scikit-image's formulas, as models.lab_color)."""
    import torch

    from .lab_color import rgb_to_lab

    if len(colours) == 0:
        return np.zeros((0, 2), np.float32)
    t = torch.from_numpy(np.asarray(colours, np.float32).T.reshape(1, 3, 1, -1).copy())
    return rgb_to_lab(t)[0, 1:, 0].numpy().T.copy()


def encode_hints(hints: Sequence[Hint], height: int, width: int, source_hw: Optional[Tuple[int, int]] = None,
                 patch: int = HINT_PATCH) -> Tuple[np.ndarray, np.ndarray]:
    """Hints -> (hint_ab (1,2,H,W) = ab / AB_RANGE, hint_mask (1,1,H,W)) at the model size H x W.

    `source_hw`: the size the hints' coordinates refer to (default H x W); positions are scaled from
    it and clipped into the image."""
    hint_ab = np.zeros((1, 2, height, width), np.float32)
    mask = np.zeros((1, 1, height, width), np.float32)
    if not len(hints):
        return hint_ab, mask
    src_h, src_w = source_hw or (height, width)
    ab = rgb_to_ab(np.array([h[2] for h in hints], np.float32)) / AB_RANGE
    half = patch // 2
    for (x, y, _), colour in zip(hints, ab):
        cx = min(width - 1, max(0, int((float(x) + 0.5) * width / src_w)))
        cy = min(height - 1, max(0, int((float(y) + 0.5) * height / src_h)))
        top, left = max(0, cy - half), max(0, cx - half)
        hint_ab[0, :, top:cy + half + 1, left:cx + half + 1] = colour[:, None, None]
        mask[0, :, top:cy + half + 1, left:cx + half + 1] = 1.0
    return hint_ab, mask


def truth_hints(rgb: np.ndarray, count: int, seed: int = 0, patch: int = HINT_PATCH) -> list:
    """`count` hints sampled from a true colour image HxWx3 (evaluation's hints curve, fixed seed):
    uniform random positions, each with the mean colour of its patch."""
    rng = np.random.default_rng(seed)
    h, w = rgb.shape[:2]
    half = patch // 2
    hints = []
    for _ in range(count):
        x, y = int(rng.integers(half, w - half)), int(rng.integers(half, h - half))
        colour = rgb[y - half:y + half + 1, x - half:x + half + 1].reshape(-1, 3).mean(axis=0)
        hints.append((x, y, tuple(float(c) for c in colour)))
    return hints


def resize_hint_maps(hint_ab: np.ndarray, mask: np.ndarray, height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """Dense hints at an image's own size -> the model's (1,2,H,W), (1,1,H,W) at height x width.

    `hint_ab` HxWx2 (a, b / AB_RANGE, as the model's input), `mask` HxW in [0, 1]. Shrinking averages
    each model pixel's hinted source pixels (mask-weighted area average), so a hint keeps its colour
    however small; a model pixel is hinted (mask 1) where any source pixel under it is."""
    import cv2

    src_h, src_w = mask.shape
    mask = mask.astype(np.float32)
    if (src_h, src_w) == (height, width):
        small_mask, small_ab = mask, hint_ab.astype(np.float32) * mask[..., None]
    else:
        interp = cv2.INTER_AREA if height * width < src_h * src_w else cv2.INTER_NEAREST
        small_mask = cv2.resize(mask, (width, height), interpolation=interp)
        weighted = cv2.resize(np.ascontiguousarray(hint_ab * mask[..., None], np.float32), (width, height),
                              interpolation=interp)
        small_ab = weighted / np.maximum(small_mask, 1e-6)[..., None]
    hinted = small_mask > 0
    ab = np.where(hinted[..., None], small_ab, 0.0).astype(np.float32)
    return ab.transpose(2, 0, 1)[None].copy(), hinted.astype(np.float32)[None, None]
