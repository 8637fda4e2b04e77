"""ESRCNN (seed 003): a small x2 CNN with two dropout layers, the seed's Monte-Carlo-dropout model.

conv 5x5 -> ReLU -> conv 3x3 -> ReLU -> dropout -> conv 3x3 -> ReLU -> dropout -> conv 3x3 ->
PixelShuffle(2), added to a bicubic upsample of the input. Both dropouts are channel dropout so
that, like FlashSR, the masks can be passed in explicitly (`dropout_masks`, N x (c2 + c3), scaled
by 1/(1-p)): ONNX/TensorRT exports take them as an input and serve.uncertainty draws them.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .flashsr import ChannelDropout
from .sr_blocks import bicubic_skip, check_scale, kaiming_init, zero_last_conv


class ESRCNN(nn.Module):
    """LR RGB [0,1] (N,3,H,W) -> SR RGB (N,3,2H,2W); not clamped (callers clamp)."""

    def __init__(self, scale: int = 2, channels: int = 64, mid_channels: int = 32, dropout: float = 0.1,
                 in_channels: int = 3):
        super().__init__()
        check_scale("ESRCNN", scale, (2,))
        self.scale = scale
        self.features = nn.Sequential(nn.Conv2d(in_channels, channels, 5, padding=2), nn.ReLU(inplace=True),
                                      nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True))
        self.drop1 = ChannelDropout(dropout)
        self.mapping = nn.Sequential(nn.Conv2d(channels, mid_channels, 3, padding=1), nn.ReLU(inplace=True))
        self.drop2 = ChannelDropout(dropout)
        self.reconstruct = nn.Sequential(nn.Conv2d(mid_channels, in_channels * scale * scale, 3, padding=1),
                                         nn.PixelShuffle(scale))
        self.split = channels
        kaiming_init(self, slope=0.0)
        zero_last_conv(self.reconstruct)

    @property
    def mask_channels(self) -> int:
        return self.split + self.mapping[0].out_channels

    @property
    def dropout_p(self) -> float:
        return self.drop1.p

    def forward(self, x: torch.Tensor, dropout_masks: Optional[torch.Tensor] = None) -> torch.Tensor:
        first = second = None
        if dropout_masks is not None:
            first, second = dropout_masks[:, : self.split], dropout_masks[:, self.split:]
        feat = self.drop1(self.features(x), first)
        feat = self.drop2(self.mapping(feat), second)
        return self.reconstruct(feat) + bicubic_skip(x, self.scale)

    def forward_mc(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """K Monte-Carlo samples of one image (x: 1xCxHxW, masks: KxM): the whole net on K copies."""
        return self(x.expand(masks.shape[0], -1, -1, -1), dropout_masks=masks)
