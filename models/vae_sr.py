"""Seed 002's variational autoencoder for x2 up-conversion, with or without encoder->decoder skips.

The encoder (as in conv_autoencoder) maps the LR image to a latent grid at 1/4 resolution: a mean
and a log-variance per cell. Training samples z = mu + sigma * eps and exposes the KL divergence
to N(0, I) as `last_kl` (train.sr adds it with a weight schedule); inference decodes the mean,
so the model and its ONNX export are deterministic. `residual=True` adds each encoder stage to
the decoder stage of the same resolution (the seed's "VAE with residual connections"); without it
every detail must pass the latent. The output adds to a bicubic upsample of the input.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .conv_autoencoder import conv_unit
from .frame_padding import pad_tensor_to_multiple
from .sr_blocks import bicubic_skip, check_scale, kaiming_init, zero_last_conv


class VAESR(nn.Module):
    """LR RGB [0,1] (N,3,H,W) -> SR RGB (N,3,2H,2W); not clamped.

    Any H, W: the input is replicate-padded to a multiple of 4 inside and the output cropped."""

    def __init__(self, scale: int = 2, widths=(32, 64, 128), latent: int = 32, residual: bool = False,
                 batch_norm: bool = True, kaiming: bool = True, in_channels: int = 3):
        super().__init__()
        check_scale("VAESR", scale, (2,))
        self.scale, self.residual = scale, residual
        w1, w2, w3 = widths
        self.enc1 = conv_unit(in_channels, w1, 1, batch_norm)  # full resolution
        self.enc2 = conv_unit(w1, w2, 2, batch_norm)  # 1/2
        self.enc3 = conv_unit(w2, w3, 2, batch_norm)  # 1/4
        self.to_latent = nn.Conv2d(w3, 2 * latent, 1)
        self.from_latent = conv_unit(latent, w3, 1, batch_norm)
        self.dec2 = conv_unit(w3, w2, batch_norm=batch_norm, transpose=True)  # 1/2
        self.dec1 = conv_unit(w2, w1, batch_norm=batch_norm, transpose=True)  # full
        self.dec0 = conv_unit(w1, w1, batch_norm=batch_norm, transpose=True)  # 2x
        self.out = nn.Conv2d(w1, in_channels, 3, padding=1)
        self.last_kl: Optional[torch.Tensor] = None
        if kaiming:
            kaiming_init(self)
        zero_last_conv(self.out)
        # start with a small posterior std (e^-3 = 0.05): with unit noise the decoder first learns to
        # ignore the latent, and the KL ramp then keeps it ignored (posterior collapse)
        nn.init.constant_(self.to_latent.bias[latent:], -6.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, h, w = pad_tensor_to_multiple(x, 4)
        e1 = self.enc1(padded)
        e2 = self.enc2(e1)
        mu, logvar = self.to_latent(self.enc3(e2)).chunk(2, dim=1)
        if self.training:
            logvar = logvar.clamp(-10, 10)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            self.last_kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean()
        else:
            z, self.last_kl = mu, None
        d = self.dec2(self.from_latent(z))
        d = self.dec1(d + e2 if self.residual else d)
        d = self.dec0(d + e1 if self.residual else d)
        return self.out(d)[..., : h * self.scale, : w * self.scale] + bicubic_skip(x, self.scale)
