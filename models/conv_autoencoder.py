"""Seed 002's CNN encoder-decoder: strided conv encoder, ConvTranspose2d decoder, x2 up-conversion.

256x256 in -> 512x512 out in the seed. Encoder: conv, then two stride-2 convs to 1/4 resolution;
decoder: three stride-2 ConvTranspose2d back up to 2x the input, a final conv. The seed's options
are constructor flags: `batch_norm`, `dropout` (Dropout2d in the decoder), `kaiming` init. As with
the other seed generators the output adds to a bicubic upsample (`bicubic_skip`), so the decoder
learns the detail, not the whole image. Any input size: it is padded to a multiple of 4 inside.
"""
from __future__ import annotations

import torch
from torch import nn

from .frame_padding import pad_tensor_to_multiple
from .sr_blocks import bicubic_skip, check_scale, kaiming_init, zero_last_conv


def conv_unit(cin: int, cout: int, stride: int = 1, batch_norm: bool = True, transpose: bool = False) -> nn.Sequential:
    """3x3 conv (or 4x4 stride-2 ConvTranspose2d) -> optional BN -> LeakyReLU."""
    conv = (nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=not batch_norm) if transpose
            else nn.Conv2d(cin, cout, 3, stride, 1, bias=not batch_norm))
    return nn.Sequential(conv, *([nn.BatchNorm2d(cout)] if batch_norm else []), nn.LeakyReLU(0.2, inplace=True))


class ConvAutoEncoder(nn.Module):
    """LR RGB [0,1] (N,3,H,W) -> SR RGB (N,3,2H,2W); not clamped.

    Any H, W: the input is replicate-padded to a multiple of 4 inside and the output cropped."""

    def __init__(self, scale: int = 2, widths=(32, 64, 128), batch_norm: bool = True, dropout: float = 0.0,
                 kaiming: bool = True, in_channels: int = 3):
        super().__init__()
        check_scale("ConvAutoEncoder", scale, (2,))
        self.scale = scale
        w1, w2, w3 = widths
        self.encoder = nn.Sequential(conv_unit(in_channels, w1, 1, batch_norm), conv_unit(w1, w2, 2, batch_norm),
                                     conv_unit(w2, w3, 2, batch_norm))
        drop = [nn.Dropout2d(dropout)] if dropout > 0 else []
        self.decoder = nn.Sequential(conv_unit(w3, w2, batch_norm=batch_norm, transpose=True), *drop,
                                     conv_unit(w2, w1, batch_norm=batch_norm, transpose=True),
                                     conv_unit(w1, w1, batch_norm=batch_norm, transpose=True),
                                     nn.Conv2d(w1, in_channels, 3, padding=1))
        if kaiming:
            kaiming_init(self)
        zero_last_conv(self.decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, h, w = pad_tensor_to_multiple(x, 4)
        detail = self.decoder(self.encoder(padded))[..., : h * self.scale, : w * self.scale]
        return detail + bicubic_skip(x, self.scale)
