"""Pad frames to a multiple inside a model, so interpolators take any H x W (and export that way).

Interpolators downsample by up to 16x; padding inside forward() keeps the serving contract simple
(pad_multiple=1) and the ONNX graph works at every size (Pad/Slice with dynamic amounts).
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F


def pad_tensor_to_multiple(x: torch.Tensor, multiple: int) -> Tuple[torch.Tensor, int, int]:
    """Replicate-pad H and W up to `multiple`; returns (padded, original H, original W)."""
    h, w = x.shape[2], x.shape[3]
    ph = (multiple - h % multiple) % multiple
    pw = (multiple - w % multiple) % multiple
    return F.pad(x, [0, pw, 0, ph], mode="replicate"), h, w


def blend(frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The linear cross-fade (1-t)*frame0 + t*frame1, the baseline every model must beat."""
    return frame0 * (1 - t) + frame1 * t
