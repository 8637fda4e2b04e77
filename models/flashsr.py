"""FlashSR: the flagship fast PSNR-oriented super-resolution CNN (x2 / x4).

Plain 3x3 convs in residual blocks (the fastest op on CPU ORT, CUDA and TensorRT alike),
one PixelShuffle upsampler (ESPCN), and a bilinear skip of the input so the network only
learns the high-frequency residual. Channel dropout sits before the upsampler ("reflash"
placement, Kong et al. 2022): it regularises training and gives Monte-Carlo dropout samples.

For portable MC dropout the masks can be passed explicitly (`dropout_masks`, shape
N x mask_channels, already scaled by 1/(1-p)); TensorRT has no stochastic Dropout, so exports
take the masks as an input and K passes run as one batch of K.

Real-world variants (`strength=True`, FFDNet-style control) take a denoise strength s in [0,1]
per image, shape (N,1): 0 keeps everything (texture, grain), 1 cleans hard (heavy noise, JPEG).
A tiny MLP maps s to a per-channel shift added after the head and before every residual block;
its last layer starts at zero, so a model initialised from plain FlashSR weights starts out
exactly as that model. The shifts cost a broadcast add per block, so the speed stays FlashSR's.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


class ChannelDropout(nn.Module):
    """Dropout2d that can also apply a caller-supplied per-sample channel mask."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if mask is not None:
            return x * mask[:, :, None, None].to(x.dtype)
        if self.training and self.p > 0:
            return F.dropout2d(x, self.p, training=True)
        return x


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class StrengthInput(nn.Module):
    """(lr, strength) positional -> model(lr, strength=strength): the two-input form that ONNX export
    and the serving backends call (FlashSR's second positional argument is the dropout masks)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, lr: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
        return self.model(lr, strength=strength)


class FlashSR(nn.Module):
    """LR RGB [0,1] (N,3,H,W) -> SR RGB (N,3,sH,sW); output is not clamped (callers clamp)."""

    def __init__(self, scale: int = 4, channels: int = 64, blocks: int = 9, dropout: float = 0.1,
                 in_channels: int = 3, strength: bool = False, default_strength: float = 0.5):
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"FlashSR supports scale 2, 3 or 4, not {scale}")
        self.scale = scale
        self.channels = channels
        self.head = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.body = nn.Sequential(*[ResidualBlock(channels) for _ in range(blocks)])
        self.body_tail = nn.Conv2d(channels, channels, 3, padding=1)
        self.dropout = ChannelDropout(dropout)
        self.upsample = nn.Sequential(
            nn.Conv2d(channels, in_channels * scale * scale, 3, padding=1),
            nn.PixelShuffle(scale),
        )
        self.default_strength = float(default_strength)
        self.strength_mlp = nn.Sequential(  # s -> one shift per channel for the head and each block
            nn.Linear(1, 32), nn.LeakyReLU(0.1), nn.Linear(32, channels * (blocks + 1))) if strength else None
        self._init_weights()

    @property
    def mask_channels(self) -> int:
        """Width of one explicit dropout mask row (see module docstring)."""
        return self.channels

    @property
    def dropout_p(self) -> float:
        return self.dropout.p

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.1, nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)
        for block in self.body:  # start each block near identity: stable, faster early training
            block.conv2.weight.data.mul_(0.1)
        nn.init.zeros_(self.upsample[0].weight)
        if self.strength_mlp is not None:
            nn.init.zeros_(self.strength_mlp[2].weight)
            nn.init.zeros_(self.strength_mlp[2].bias)

    @property
    def has_strength(self) -> bool:
        return self.strength_mlp is not None

    def _trunk(self, x: torch.Tensor, strength: Optional[torch.Tensor] = None) -> torch.Tensor:
        feat = self.head(x)
        if self.strength_mlp is None:
            return feat + self.body_tail(self.body(feat))
        if strength is None:
            strength = torch.full((x.shape[0], 1), self.default_strength, dtype=x.dtype, device=x.device)
        shifts = self.strength_mlp(strength.reshape(-1, 1).to(x.dtype))
        shifts = shifts.reshape(shifts.shape[0], -1, self.channels, 1, 1).to(feat.dtype)
        feat = feat + shifts[:, 0]
        h = feat
        for i, block in enumerate(self.body):
            h = block(h + shifts[:, i + 1])
        return feat + self.body_tail(h)

    def forward(self, x: torch.Tensor, dropout_masks: Optional[torch.Tensor] = None,
                strength: Optional[torch.Tensor] = None) -> torch.Tensor:
        """strength: (N,1) in [0,1] for strength models (None: default_strength); ignored otherwise."""
        feat = self.dropout(self._trunk(x, strength), dropout_masks)
        skip = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.upsample(feat) + skip

    def forward_mc(self, x: torch.Tensor, masks: torch.Tensor, strength: Optional[torch.Tensor] = None) -> torch.Tensor:
        """K Monte-Carlo samples of one image (x: 1xCxHxW, masks: KxC) -> K outputs.

        Same numbers as forward(x.expand(K, ...), masks), but the trunk before the dropout (~99%
        of the work) runs once and is broadcast over the K masks.
        """
        skip = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.upsample(self.dropout(self._trunk(x, strength), masks)) + skip
