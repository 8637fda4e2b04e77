"""Portable Monte-Carlo dropout: the dropout masks are an explicit input, drawn by the caller.

ONNX Runtime and TensorRT either drop Dropout at inference or have no RNG at all, so an MC model
(ModelSpec.mc_dropout) takes its masks as a tensor: the caller draws K masks (sample_masks), the
model runs the one image under each, and the K outputs give the mean and the per-pixel spread.
Same masks, same output, on every runtime.

An MC model provides `mask_channels`, `dropout_p` and `forward_mc(x 1xCxHxW, masks KxM)`; FlashSR's
runs the trunk before the dropout once and only the layers after it K times.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def sample_masks(k: int, channels: int, p: float, seed: int) -> np.ndarray:
    """K channel masks: each entry kept with probability 1-p and scaled by 1/(1-p) (float32, K x C)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), not {p}")
    keep = np.random.default_rng(seed).random((k, channels)) >= p
    return (keep / (1.0 - p)).astype(np.float32)


def __getattr__(name: str) -> Any:
    """MCDropoutWrapper (a torch module, models/mc_wrapper.py) on first access: this module must import
    without torch, since serving draws masks with sample_masks from the shipped ONNX files."""
    if name == "MCDropoutWrapper":
        from .mc_wrapper import MCDropoutWrapper

        return MCDropoutWrapper
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
