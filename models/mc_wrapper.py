"""The torch side of portable MC dropout (models/mc_dropout.py), apart so that module imports without torch."""
from __future__ import annotations

import torch
from torch import nn


class MCDropoutWrapper(nn.Module):
    """(lr 1xCxHxW, masks KxM) -> K outputs: an MC model's forward_mc as a module's forward (for export)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, lr: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return self.model.forward_mc(lr, masks)
