"""Portable Monte-Carlo dropout: the dropout masks are an explicit input, drawn by the caller.

ONNX Runtime and TensorRT either drop Dropout at inference or have no RNG at all, so an MC model
(ModelSpec.mc_dropout) takes its masks as a tensor: the caller draws K masks (sample_masks), the
model runs the one image under each, and the K outputs give the mean and the per-pixel spread.
Same masks, same output, on every runtime.

An MC model provides `mask_channels`, `dropout_p` and `forward_mc(x 1xCxHxW, masks KxM)`; FlashSR's
runs the trunk before the dropout once and only the layers after it K times.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def sample_masks(k: int, channels: int, p: float, seed: int) -> np.ndarray:
    """K channel masks: each entry kept with probability 1-p and scaled by 1/(1-p) (float32, K x C)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), not {p}")
    keep = np.random.default_rng(seed).random((k, channels)) >= p
    return (keep / (1.0 - p)).astype(np.float32)


class MCDropoutWrapper(nn.Module):
    """(lr 1xCxHxW, masks KxM) -> K outputs: an MC model's forward_mc as a module's forward (for export)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, lr: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return self.model.forward_mc(lr, masks)
