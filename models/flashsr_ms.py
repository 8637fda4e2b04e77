"""FlashSR-MS: FlashSR with a half-resolution stage, for real photos (`flashsr_real_ms_x4`).

Noise, JPEG blocks (8 LR px) and blur span more than FlashSR's 3x3 steps reach cheaply. Before the
full-resolution body this adds a U-Net / FFDNet-style stage: PixelUnshuffle(2) of the head's features,
1x1 to `half_channels`, residual blocks at a quarter of the pixels, 1x1 back and PixelShuffle(2), added
to the features. A 3x3 conv at half size with twice the channels costs what one at full size costs, so
each half-size block has a FlashSR block's cost but 4x its weights and twice its reach: 5 half-size and
4 full-size blocks cost what FlashSR's 9 do. Everything else (strength input, dropout before the
upsampler, bilinear skip, Monte-Carlo masks) is FlashSR's; the strength MLP also shifts each half block.

Odd sizes are replicate-padded to even and cropped back inside the graph. Pixel grouping makes the
stage shift-variant by one pixel, so the spec's pad_multiple is 2: serving pads images to even sizes
and tiles start on even pixels (serve.tiling), which keeps tiled output equal to a whole-image pass.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .flashsr import FlashSR, ResidualBlock
from .frame_padding import pad_tensor_to_multiple


class FlashSRMultiScale(FlashSR):
    """LR RGB [0,1] (N,3,H,W) (+ strength (N,1)) -> SR RGB (N,3,sH,sW), as FlashSR."""

    def __init__(self, scale: int = 4, channels: int = 64, blocks: int = 4, half_blocks: int = 5,
                 half_channels: int = 128, dropout: float = 0.1, in_channels: int = 3, strength: bool = True,
                 default_strength: float = 0.5):
        super().__init__(scale, channels, blocks, dropout, in_channels, strength, default_strength)
        if half_blocks < 1:
            raise ValueError(f"half_blocks must be >= 1 (use FlashSR without a half stage), not {half_blocks}")
        self.half_blocks, self.half_channels = half_blocks, half_channels
        self.half_in = nn.Conv2d(channels * 4, half_channels, 1)
        self.half_body = nn.Sequential(*[ResidualBlock(half_channels) for _ in range(half_blocks)])
        self.half_out = nn.Conv2d(half_channels, channels * 4, 1)
        for m in [self.half_in, *self.half_body.modules(), self.half_out]:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.1, nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)
        for block in self.half_body:
            block.conv2.weight.data.mul_(0.1)
        nn.init.zeros_(self.half_out.weight)  # the stage starts as a no-op
        if strength:  # one shift per channel for the head, each full block and each half block
            self.strength_mlp[2] = nn.Linear(32, channels * (blocks + 1) + half_channels * half_blocks)
            nn.init.zeros_(self.strength_mlp[2].weight)
            nn.init.zeros_(self.strength_mlp[2].bias)

    def receptive_radius(self) -> int:
        """Input pixels of context per output pixel: a 3x3 conv at half size reaches 2 LR px, and the
        pixel (un)shuffles add one each (serve.tiling's sum of half-kernels alone would undercount)."""
        half = sum((m.kernel_size[0] - 1) // 2 * 2 for m in self.half_body.modules() if isinstance(m, nn.Conv2d))
        full = sum((m.kernel_size[0] - 1) // 2 for name, m in self.named_modules()
                   if isinstance(m, nn.Conv2d) and not name.startswith("half_"))
        return full + half + 2

    def _half_stage(self, feat: torch.Tensor, shifts: Optional[torch.Tensor]) -> torch.Tensor:
        """The half-resolution residual; shifts: (N, half_blocks, half_channels) or None."""
        padded, h, w = pad_tensor_to_multiple(feat, 2)
        u = self.half_in(F.pixel_unshuffle(padded, 2))
        for i, block in enumerate(self.half_body):
            u = block(u if shifts is None else u + shifts[:, i, :, None, None])
        return F.pixel_shuffle(self.half_out(u), 2)[:, :, :h, :w]

    def _trunk(self, x: torch.Tensor, strength: Optional[torch.Tensor] = None) -> torch.Tensor:
        feat = self.head(x)
        if self.strength_mlp is None:
            return feat + self.body_tail(self.body(feat + self._half_stage(feat, None)))
        if strength is None:
            strength = torch.full((x.shape[0], 1), self.default_strength, dtype=x.dtype, device=x.device)
        shifts = self.strength_mlp(strength.reshape(-1, 1).to(x.dtype)).to(feat.dtype)
        split = self.channels * (len(self.body) + 1)
        full = shifts[:, :split].reshape(shifts.shape[0], -1, self.channels, 1, 1)
        half = shifts[:, split:].reshape(shifts.shape[0], self.half_blocks, self.half_channels)
        feat = feat + full[:, 0]
        h = feat + self._half_stage(feat, half)
        for i, block in enumerate(self.body):
            h = block(h + full[:, i + 1])
        return feat + self.body_tail(h)
