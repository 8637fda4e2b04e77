"""U-Net discriminator with spectral norm (Real-ESRGAN, Wang et al. 2021) for the real-photo GAN.

A global "real or fake" score (the SRGAN discriminator) judges a whole patch at once; under the
Real-ESRGAN degradations that lets the generator pass by inventing texture anywhere. A U-Net gives
one logit per pixel, so it can say *where* the output looks generated, and spectral norm on every
conv keeps its gradients bounded, which is what keeps the fine-tune stable without batch norm.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm


def _sn_conv(cin: int, cout: int, stride: int = 1) -> nn.Module:
    kernel = 4 if stride == 2 else 3
    return spectral_norm(nn.Conv2d(cin, cout, kernel, stride, 1, bias=False))


class UNetDiscriminator(nn.Module):
    """RGB (N,3,H,W), H and W multiples of 8 -> (logits (N,1,H,W), [feature maps]).

    Three stride-2 encoder levels (widths C, 2C, 4C, 8C), a bilinear-upsampling decoder with skip
    additions, two refining convs and a 1-channel head. Every map after the stem goes to the
    feature-matching loss of train/gan.py, as the StridedDiscriminator's blocks do.
    """

    def __init__(self, channels: int = 32, in_channels: int = 3):
        super().__init__()
        c = channels
        self.stem = nn.Conv2d(in_channels, c, 3, 1, 1)
        self.down = nn.ModuleList([_sn_conv(c, 2 * c, 2), _sn_conv(2 * c, 4 * c, 2), _sn_conv(4 * c, 8 * c, 2)])
        self.up = nn.ModuleList([_sn_conv(8 * c, 4 * c), _sn_conv(4 * c, 2 * c), _sn_conv(2 * c, c)])
        self.refine = nn.ModuleList([_sn_conv(c, c), _sn_conv(c, c)])
        self.head = nn.Conv2d(c, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor):
        act = F.leaky_relu
        x = act(self.stem(x), 0.2)
        skips, features = [x], []
        for conv in self.down:
            x = act(conv(x), 0.2)
            skips.append(x)
            features.append(x)
        skips.pop()  # the deepest level is x itself
        for conv in self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = act(conv(x), 0.2) + skips.pop()
            features.append(x)
        for conv in self.refine:
            x = act(conv(x), 0.2)
        features.append(x)
        return self.head(x), features
