"""Layers the seed SR generators share (SRGAN, Swift-SRGAN, ESRCNN, encoder-decoders).

`bicubic_skip` is the seed-004 trick every seed generator here uses: the network adds its output
to a bicubic upsample of the input, so it learns only the missing detail and keeps colours right.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def bicubic_skip(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upsample (align_corners=False: exports to ONNX Resize cubic, -0.75 like PyTorch)."""
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


def check_scale(name: str, scale: int, allowed=(2, 4)) -> None:
    if scale not in allowed:
        raise ValueError(f"{name} supports scale {' or '.join(map(str, allowed))}, not {scale}")


def kaiming_init(module: nn.Module, slope: float = 0.2) -> None:
    """Kaiming-normal convs (seed 002's 'Kaiming initialization' option), zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, a=slope, nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def zero_last_conv(conv: nn.Module) -> None:
    """Start a residual-on-bicubic generator at exactly bicubic: early training never does worse."""
    for m in reversed(list(conv.modules())):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.zeros_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
            return


class SRResNetBlock(nn.Module):
    """conv -> BN -> PReLU -> conv -> BN, plus the input (the SRGAN-family block)."""

    def __init__(self, conv, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            conv(channels, channels, 3, bias=False), nn.BatchNorm2d(channels), nn.PReLU(channels),
            conv(channels, channels, 3, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualSRGenerator(nn.Module):
    """The SRGAN-family generator, LR RGB [0,1] (N,3,H,W) -> SR RGB (N,3,sH,sW), not clamped.

    9x9 head + PReLU, `blocks` ResidualBlocks, conv + BN with a long skip, one (conv ->
    PixelShuffle(2) -> PReLU) per factor of 2, a 9x9 tail added to `bicubic_skip`. The tail
    starts at zero, so an untrained generator is exactly bicubic. `conv(cin, cout, kernel,
    stride=1, bias=True)` makes every conv: plain for SRGAN, depthwise-separable for Swift-SRGAN.
    """

    def __init__(self, conv, name: str, scale: int, channels: int, blocks: int, in_channels: int = 3):
        super().__init__()
        check_scale(name, scale)
        self.scale = scale
        self.head = nn.Sequential(conv(in_channels, channels, 9), nn.PReLU(channels))
        self.body = nn.Sequential(*[SRResNetBlock(conv, channels) for _ in range(blocks)])
        self.body_tail = nn.Sequential(conv(channels, channels, 3, bias=False), nn.BatchNorm2d(channels))
        self.upsample = nn.Sequential(*[
            nn.Sequential(conv(channels, channels * 4, 3), nn.PixelShuffle(2), nn.PReLU(channels))
            for _ in range(int(math.log2(scale)))])
        self.tail = conv(channels, in_channels, 9)
        zero_last_conv(self.tail)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x)
        feat = feat + self.body_tail(self.body(feat))
        return self.tail(self.upsample(feat)) + bicubic_skip(x, self.scale)


class StridedDiscriminator(nn.Module):
    """RGB (N,3,H,W) -> (logits (N,1), [block features]): the SRGAN discriminator layout.

    8 conv blocks (stride 2 every second one, widths doubling from `channels`, BN after the
    first, LeakyReLU 0.2), an adaptive pool so any patch size works, then two dense layers.
    `conv(cin, cout, 3, stride, bias)` makes each block's conv: plain for SRGAN, separable for
    Swift-SRGAN. The block features feed the feature-matching loss (train/gan.py).
    """

    def __init__(self, conv, channels: int = 32, in_channels: int = 3, pool: int = 4, hidden: int = 256):
        super().__init__()
        layers, cin = [], in_channels
        for i, mult in enumerate((1, 1, 2, 2, 4, 4, 8, 8)):
            cout = channels * mult
            block = [conv(cin, cout, 3, stride=1 + i % 2, bias=i == 0)] + ([] if i == 0 else [nn.BatchNorm2d(cout)])
            layers.append(nn.Sequential(*block, nn.LeakyReLU(0.2, inplace=True)))
            cin = cout
        self.blocks = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(pool), nn.Flatten(), nn.Linear(cin * pool * pool, hidden),
                                  nn.LeakyReLU(0.2, inplace=True), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor):
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return self.head(x), features
