"""Swift-SRGAN (seed 001; Krishnan & Krishnan 2021): SRGAN rebuilt from depthwise-separable convs.

Generator: separable 9x9 head + PReLU, 16 residual blocks (separable conv -> BN -> PReLU ->
separable conv -> BN, + skip), separable conv + BN with a long skip, one (separable conv ->
PixelShuffle(2) -> PReLU) block per factor of 2, separable 9x9 tail. One change from the paper:
the tail's output is added to a bicubic upsample of the input (seed 004's colour-fidelity skip)
instead of going through tanh, so the generator starts at bicubic and learns the residual.
Discriminator: 8 separable conv blocks (BN, LeakyReLU; stride 2 every second block) ->
adaptive average pool -> two linear layers; it also returns its block features (feature
matching replaces the pretrained MobileNetV2 content loss, which cannot be downloaded here).
"""
from __future__ import annotations

import torch
from torch import nn

from .sr_blocks import ResidualSRGenerator, StridedDiscriminator


class SeparableConv2d(nn.Module):
    """Depthwise k x k conv (one filter per channel) then a 1x1 pointwise conv."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, bias: bool = True):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, kernel, stride, kernel // 2, groups=cin, bias=bias)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class SwiftSRGANGenerator(ResidualSRGenerator):
    """LR RGB [0,1] (N,3,H,W) -> SR RGB (N,3,sH,sW); not clamped (callers clamp)."""

    def __init__(self, scale: int = 4, channels: int = 64, blocks: int = 16, in_channels: int = 3):
        super().__init__(SeparableConv2d, "Swift-SRGAN", scale, channels, blocks, in_channels)


class SwiftSRGANDiscriminator(StridedDiscriminator):
    """Seed 001's discriminator (separable convs); returns (logits, block features)."""

    def __init__(self, channels: int = 32, in_channels: int = 3):
        super().__init__(SeparableConv2d, channels, in_channels)
