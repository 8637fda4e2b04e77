"""SRGAN (seed 004; Ledig et al. 2017): residual-block generator and its VGG-style discriminator.

Generator: 9x9 head + PReLU, residual blocks (conv -> BN -> PReLU -> conv -> BN, + skip), conv +
BN with a long skip, (conv -> PixelShuffle(2) -> PReLU) per factor of 2, 9x9 tail, and — as seed
004 does for colour fidelity — the tail adds to a bicubic upsample of the input. 8 blocks instead
of the paper's 16 so it trains on a CPU; trained with a pixel loss it is "SRResNet", with the GAN
losses (train/gan.py) it is SRGAN. The discriminator returns its block features too, for the
feature-matching loss that stands in for the pretrained VGG content loss.
"""
from __future__ import annotations

import math
import torch
from torch import nn

from .sr_blocks import StridedDiscriminator, bicubic_skip, check_scale, zero_last_conv


class SRGANResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRGANGenerator(nn.Module):
    """LR RGB [0,1] (N,3,H,W) -> SR RGB (N,3,sH,sW); not clamped (callers clamp)."""

    def __init__(self, scale: int = 4, channels: int = 64, blocks: int = 8, in_channels: int = 3):
        super().__init__()
        check_scale("SRGAN", scale)
        self.scale = scale
        self.head = nn.Sequential(nn.Conv2d(in_channels, channels, 9, padding=4), nn.PReLU(channels))
        self.body = nn.Sequential(*[SRGANResidualBlock(channels) for _ in range(blocks)])
        self.body_tail = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                       nn.BatchNorm2d(channels))
        self.upsample = nn.Sequential(*[
            nn.Sequential(nn.Conv2d(channels, channels * 4, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(channels))
            for _ in range(int(math.log2(scale)))])
        self.tail = nn.Conv2d(channels, in_channels, 9, padding=4)
        zero_last_conv(self.tail)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x)
        feat = feat + self.body_tail(self.body(feat))
        return self.tail(self.upsample(feat)) + bicubic_skip(x, self.scale)


def _plain_conv(cin: int, cout: int, stride: int, bias: bool) -> nn.Module:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


class SRGANDiscriminator(StridedDiscriminator):
    """The paper's discriminator (plain 3x3 convs); returns (logits, block features)."""

    def __init__(self, channels: int = 32, in_channels: int = 3):
        super().__init__(_plain_conv, channels, in_channels)
