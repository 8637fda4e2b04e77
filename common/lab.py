"""CIE Lab (D65) constants and the numpy Lab -> sRGB conversion, without torch.

models/lab_color.py runs the same formulas in torch inside exported graphs; serving recombines the
exact L with a model's chroma here, in numpy, so it needs no torch. Constants are scikit-image's
(`skimage.color.lab2rgb`, illuminant D65, 2-degree observer).
"""
from __future__ import annotations

import numpy as np

WHITE_D65 = (0.95047, 1.0, 1.08883)
RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423),
              (0.212671, 0.715160, 0.072169),
              (0.019334, 0.119193, 0.950227))
EPS = 0.008856  # (6/29)^3: skimage's threshold between the cube root and the linear segment
KAPPA = 7.787
AB_RANGE = 110.0  # |a|, |b| of sRGB colours stay below ~110 (the colorizers' output range)


def xyz_to_rgb_matrix() -> np.ndarray:
    """XYZ (divided by the white) -> linear sRGB, float64 3x3: the inverse with the white point folded in."""
    return np.linalg.inv(np.array(RGB_TO_XYZ, np.float64)) * np.array(WHITE_D65, np.float64)[None, :]


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """HxWx3 Lab (L in [0,100]) -> float32 sRGB clipped to [0,1]; the same steps as models.lab_color."""
    lab = np.asarray(lab, dtype=np.float32)
    fy = (lab[..., 0] + np.float32(16.0)) / np.float32(116.0)
    f = np.stack([fy + lab[..., 1] / np.float32(500.0), fy,
                  np.maximum(fy - lab[..., 2] / np.float32(200.0), np.float32(0.0))], axis=-1)
    xyz = np.where(f > 0.2068966, np.maximum(f, np.float32(0.2068966)) ** 3,
                   (f - np.float32(16.0 / 116.0)) / np.float32(KAPPA))
    linear = xyz @ xyz_to_rgb_matrix().astype(np.float32).T
    rgb = np.where(linear > 0.0031308, 1.055 * np.maximum(linear, np.float32(0.0031308)) ** (1.0 / 2.4) - 0.055,
                   12.92 * linear)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)
