"""Seed 000's Grey2RGB autoencoder: grey (N,1,H,W) -> RGB (N,3,H,W), both in [0,1].

As the seed describes it: an encoder of strided Conv2d + BatchNorm + LeakyReLU, a decoder of
ConvTranspose2d + BatchNorm + LeakyReLU, and a Sigmoid on the last layer. There are no skip
connections, so every detail must pass the bottleneck: it is the baseline the Lab U-Net
(models/colorize_lab.py) is measured against. Widths are smaller than the seed's so CPU training
gets somewhere in minutes. H and W should be multiples of 2**len(channels) (the spec's pad_multiple;
serving pads); other sizes are resized back to the input's at the end, so any size runs.
Grey is lightness L/100 (models.lab_color.grey_from_rgb).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Grey2RGBAutoEncoder(nn.Module):
    def __init__(self, channels: Sequence[int] = (32, 64, 128)):
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels:
            raise ValueError("Grey2RGBAutoEncoder needs at least one encoder width")
        self.encoder = self._make_layers([1] + channels, transpose=False)
        self.decoder = self._make_layers(channels[::-1] + [3], transpose=True)

    @staticmethod
    def _make_layers(widths: Sequence[int], transpose: bool) -> nn.Sequential:
        layers = []
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            last = transpose and i == len(widths) - 2
            if transpose:
                layers.append(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1))
            else:
                layers.append(nn.Conv2d(cin, cout, 3, stride=2, padding=1))
            layers += [nn.Sigmoid()] if last else [nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]
        return nn.Sequential(*layers)

    @property
    def pad_multiple(self) -> int:
        return 2 ** sum(isinstance(m, nn.Conv2d) for m in self.encoder)

    def forward(self, grey: torch.Tensor) -> torch.Tensor:
        rgb = self.decoder(self.encoder(grey))
        if rgb.shape[-2:] == grey.shape[-2:]:
            return rgb
        return F.interpolate(rgb, size=grey.shape[-2:], mode="bilinear", align_corners=False)
