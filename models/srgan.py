"""SRGAN (seed 004; Ledig et al. 2017): residual-block generator and its VGG-style discriminator.

Generator: 9x9 head + PReLU, residual blocks (conv -> BN -> PReLU -> conv -> BN, + skip), conv +
BN with a long skip, (conv -> PixelShuffle(2) -> PReLU) per factor of 2, 9x9 tail, and — as seed
004 does for colour fidelity — the tail adds to a bicubic upsample of the input. 8 blocks instead
of the paper's 16 so it trains on a CPU; trained with a pixel loss it is "SRResNet", with the GAN
losses (train/gan.py) it is SRGAN. The discriminator returns its block features too, for the
feature-matching loss that stands in for the pretrained VGG content loss.
"""
from __future__ import annotations

from torch import nn

from .sr_blocks import ResidualSRGenerator, StridedDiscriminator


def plain_conv(cin: int, cout: int, kernel: int = 3, stride: int = 1, bias: bool = True) -> nn.Module:
    return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=bias)


class SRGANGenerator(ResidualSRGenerator):
    """LR RGB [0,1] (N,3,H,W) -> SR RGB (N,3,sH,sW); not clamped (callers clamp)."""

    def __init__(self, scale: int = 4, channels: int = 64, blocks: int = 8, in_channels: int = 3):
        super().__init__(plain_conv, "SRGAN", scale, channels, blocks, in_channels)


class SRGANDiscriminator(StridedDiscriminator):
    """The paper's discriminator (plain 3x3 convs); returns (logits, block features)."""

    def __init__(self, channels: int = 32, in_channels: int = 3):
        super().__init__(plain_conv, channels, in_channels)
