"""VideoFlashSR: causal recurrent video super-resolution that starts out as per-frame FlashSR.

Why this shape: a CPU training budget of about an hour cannot teach a video model from scratch, so the
model is FlashSR (models/flashsr.py, warm-started from its shipped weights) plus a propagation branch
whose last layer is zero: at initialisation every frame comes out exactly as flashsr_x4 makes it, and
training can only add what the previous frames know.

One time step (the unit ONNX exports and runtimes stream): (current LR frame, previous LR frame,
hidden LR features) -> (SR frame, new hidden). The flow current -> previous comes from the IFBlocks of
FlowInterp (warm-started from `flowinterp`, on the LR frames upscaled x2, where they were trained on
motion of that size), asked at t = `flow_time`: the shipped vsr_x4 / vsr_x2 ask at t = 0, which the
blocks never saw in training (they find about a third of the motion); 0.5 (F_t->1 - F_t->0) aligns far
better and is the setting for a retrained model (scripts/vsr_diagnose.py). The hidden features (FlashSR's
trunk output of the previous frame) are backward-warped along it and fused into the head features by a small conv whose
1x1 output layer starts at zero. The fusion also sees the warping error of the LR frame, so it can
learn to ignore features where the flow is wrong (occlusions). The first frame of a clip, and the first
after a scene cut, is the step with prev = current and hidden = zeros (`start_hidden`).

`fuse_at`: "head" (the shipped models) fuses before FlashSR's body, so the body can use the neighbours,
but the fusion then compares shallow head features with deep propagated trunk features, and every
training step back-propagates through the body; "trunk" fuses after the body, where the current and
the propagated features are of one kind, and with FlashSR frozen a step only back-propagates through
the fusion (and, over time, the hidden state).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .flashsr import FlashSR
from .flowinterp import PAD_MULTIPLE, FlowInterp, backward_warp
from .frame_padding import pad_tensor_to_multiple

FLOW_UPSCALE = 2  # the flow net sees LR frames x2: LR motion is a few pixels, the blocks' pyramid wants more


class VideoFlashSR(nn.Module):
    """step(lr, prev_lr, hidden) -> (sr, hidden); forward(clip (N,T,3,H,W)) -> SR clip, for training."""

    def __init__(self, scale: int = 4, channels: int = 64, blocks: int = 9, flow_channels=(64, 48, 32),
                 fuse_channels: int = 64, flow_time: float = 0.0, fuse_at: str = "head"):
        super().__init__()
        if fuse_at not in ("head", "trunk"):
            raise ValueError(f"fuse_at must be 'head' or 'trunk', not {fuse_at!r}")
        self.scale = scale
        self.flow_time = float(flow_time)
        self.fuse_at = fuse_at
        self.channels = channels
        self.sr = FlashSR(scale=scale, channels=channels, blocks=blocks, dropout=0.0)
        self.flow = FlowInterp(channels=tuple(flow_channels))
        del self.flow.refine  # only the flow blocks are used
        self.fuse = nn.Sequential(nn.Conv2d(2 * channels + 3, fuse_channels, 3, padding=1),
                                  nn.LeakyReLU(0.1, inplace=True), nn.Conv2d(fuse_channels, channels, 1))
        nn.init.zeros_(self.fuse[2].weight)
        nn.init.zeros_(self.fuse[2].bias)

    @property
    def hidden_channels(self) -> int:
        return self.channels

    def start_hidden(self, lr: torch.Tensor) -> torch.Tensor:
        """The hidden state before a clip's first frame (and after a scene cut): zeros."""
        return lr.new_zeros(lr.shape[0], self.channels, lr.shape[2], lr.shape[3])

    def estimate_flow(self, lr: torch.Tensor, prev_lr: torch.Tensor) -> torch.Tensor:
        """Flow current -> previous at LR, in LR pixels (N,2,H,W): backward-warping prev along it gives lr."""
        h, w = lr.shape[2], lr.shape[3]
        up = [F.interpolate(x, scale_factor=float(FLOW_UPSCALE), mode="bilinear", align_corners=False)
              for x in (lr, prev_lr)]
        x0, _, _ = pad_tensor_to_multiple(up[0], PAD_MULTIPLE)
        x1, _, _ = pad_tensor_to_multiple(up[1], PAD_MULTIPLE)
        # flow_time 0 (the shipped models): FlowInterp's F_t->1 at t = 0 is the flow frame0 -> frame1, but
        # it never saw t = 0 in training and finds a third of the motion; at 0 < t < 1, F_t->1 - F_t->0
        # is frame0 -> frame1 for linear motion and aligns far better (scripts/vsr_diagnose.py)
        flow, _ = self.flow.estimate_flow(x0, x1, lr.new_full((lr.shape[0], 1, 1, 1), self.flow_time))
        flow = flow[:, 2:4] - flow[:, 0:2] if self.flow_time else flow[:, 2:4]
        flow = flow[:, :, : h * FLOW_UPSCALE, : w * FLOW_UPSCALE]
        return F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False) / FLOW_UPSCALE

    def step(self, lr: torch.Tensor, prev_lr: torch.Tensor, hidden: torch.Tensor
             ) -> Tuple[torch.Tensor, torch.Tensor]:
        """One frame: SR (N,3,sH,sW, not clamped) and the hidden features (N,C,H,W) for the next one."""
        flow = self.estimate_flow(lr, prev_lr)
        # the grid in fp32: under bf16 autocast it would round sampling positions by up to 0.1-0.45 px
        # (scripts/vsr_diagnose.py), as large as the sub-pixel LR motion; a no-op in fp32 and in exports
        aligned = backward_warp(hidden.float(), flow.float())
        error = lr - backward_warp(prev_lr, flow)
        feat = self.sr.head(lr)
        if self.fuse_at == "head":
            feat = feat + self.fuse(torch.cat([feat, aligned, error], 1))
        trunk = feat + self.sr.body_tail(self.sr.body(feat))
        if self.fuse_at == "trunk":  # late fusion: aligned and current features are of one kind (trunk)
            trunk = trunk + self.fuse(torch.cat([trunk, aligned, error], 1))
        skip = F.interpolate(lr, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.sr.upsample(trunk) + skip, trunk

    def forward(self, clip: torch.Tensor, restart: Optional[List[bool]] = None) -> torch.Tensor:
        """(N,T,3,H,W) -> (N,T,3,sH,sW), causally; `restart[t]` True starts afresh at frame t (a cut)."""
        outs = []
        hidden, prev = self.start_hidden(clip[:, 0]), clip[:, 0]
        for t in range(clip.shape[1]):
            lr = clip[:, t]
            if t > 0 and restart is not None and restart[t]:
                hidden, prev = self.start_hidden(lr), lr
            sr, hidden = self.step(lr, prev, hidden)
            outs.append(sr)
            prev = lr
        return torch.stack(outs, 1)


class VSRStep(nn.Module):
    """(lr, prev_lr, hidden) positional -> (sr, hidden): the one-time-step graph that ONNX exports."""

    def __init__(self, model: VideoFlashSR):
        super().__init__()
        self.model = model

    def forward(self, lr: torch.Tensor, prev_lr: torch.Tensor, hidden: torch.Tensor):
        return self.model.step(lr, prev_lr, hidden)
