"""sRGB <-> CIE Lab (D65) in plain torch ops, so colour conversion lives inside exported graphs.

This is the exception to the project's RGB-[0,1] tensor convention: `rgb_to_lab` returns and
`lab_to_rgb` takes (N,3,H,W) Lab tensors with L in [0,100] and a, b roughly in [-110,110]. The
formulas and constants are scikit-image's (`skimage.color.rgb2lab` / `lab2rgb`, illuminant D65,
2-degree observer), so torch, ONNX and numpy agree. Only Conv (1x1 matrix), Pow, Where, Clip and
arithmetic are used: ONNX Runtime and TensorRT run them as they are. Every pow's base is clamped
positive first, so the branch `torch.where` discards never produces a NaN gradient.

Grey in the project's colorization models is L/100 (lightness), see `grey_from_rgb`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from common.lab import EPS as _EPS
from common.lab import KAPPA as _KAPPA
from common.lab import RGB_TO_XYZ, WHITE_D65  # stated once, shared with serving's numpy conversion


def _matrix(rows, like: torch.Tensor, scale_rows=None, scale_cols=None) -> torch.Tensor:
    m = torch.tensor(rows, dtype=torch.float64)
    if scale_rows is not None:
        m = m / torch.tensor(scale_rows, dtype=torch.float64)[:, None]
    if scale_cols is not None:
        m = m * torch.tensor(scale_cols, dtype=torch.float64)[None, :]
    return m.to(dtype=like.dtype, device=like.device)[:, :, None, None]


def _xyz_to_rgb_matrix(like: torch.Tensor) -> torch.Tensor:
    m = torch.linalg.inv(torch.tensor(RGB_TO_XYZ, dtype=torch.float64))
    m = m * torch.tensor(WHITE_D65, dtype=torch.float64)[None, :]  # folds the white-point scaling in
    return m.to(dtype=like.dtype, device=like.device)[:, :, None, None]


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) sRGB in [0,1] -> Lab (L in [0,100]); matches skimage.color.rgb2lab."""
    c = rgb.clamp(0.0, 1.0)
    linear = torch.where(c > 0.04045, ((c.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = F.conv2d(linear, _matrix(RGB_TO_XYZ, rgb, scale_rows=WHITE_D65))  # already divided by the white
    f = torch.where(xyz > _EPS, xyz.clamp(min=_EPS) ** (1.0 / 3.0), _KAPPA * xyz + 16.0 / 116.0)
    fx, fy, fz = f[:, 0:1], f[:, 1:2], f[:, 2:3]
    return torch.cat([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) Lab -> sRGB clipped to [0,1]; matches skimage.color.lab2rgb (out-of-gamut colours clip)."""
    lightness, a, b = lab[:, 0:1], lab[:, 1:2], lab[:, 2:3]
    fy = (lightness + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = (fy - b / 200.0).clamp(min=0.0)  # skimage clips negative Z to 0 the same way
    f = torch.cat([fx, fy, fz], dim=1)
    xyz = torch.where(f > 0.2068966, f.clamp(min=0.2068966) ** 3, (f - 16.0 / 116.0) / _KAPPA)
    linear = F.conv2d(xyz, _xyz_to_rgb_matrix(lab))
    rgb = torch.where(linear > 0.0031308, 1.055 * linear.clamp(min=0.0031308) ** (1.0 / 2.4) - 0.055,
                      12.92 * linear)
    return rgb.clamp(0.0, 1.0)


def grey_from_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) RGB -> (N,1,H,W) lightness L/100 in [0,1]: the colorization models' grey input."""
    return rgb_to_lab(rgb)[:, 0:1] / 100.0


def grey_to_rgb(grey: torch.Tensor) -> torch.Tensor:
    """(N,1,H,W) L/100 -> the neutral RGB with that lightness (a = b = 0): the 'grey' baseline."""
    lab = torch.cat([grey * 100.0, torch.zeros_like(grey), torch.zeros_like(grey)], dim=1)
    return lab_to_rgb(lab)
