"""FlowInterp: a tiny RIFE/IFRNet-style frame interpolator for an arbitrary timestep t in (0, 1).

Three IFBlocks estimate the intermediate flows F_t->0, F_t->1 and a fusion mask coarse to fine
(each block sees the frames at 1/8, 1/4, 1/2 and computes at 1/16, 1/8, 1/4), each refining the
previous estimate from the frames backward-warped with grid_sample at its own resolution. The warped frames are fused by
the mask and a small refinement net at 1/2 resolution adds a residual for occlusions and blur.
Flows are estimated directly for t (t enters as a constant input plane, as in RIFE v4), so any t
works in one pass. Frames are padded to a multiple of 16 inside forward(), so any H x W goes in.
Plain convs, PixelShuffle, bilinear Resize and GridSample: exports to ONNX opset >= 16 and TensorRT.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .frame_padding import pad_tensor_to_multiple

PAD_MULTIPLE = 16


def backward_warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample img at (x + flow_x, y + flow_y); flow in pixels, (N,2,H,W); borders replicate."""
    h, w = img.shape[2], img.shape[3]
    xs = torch.arange(w, dtype=img.dtype, device=img.device).view(1, 1, 1, -1)
    ys = torch.arange(h, dtype=img.dtype, device=img.device).view(1, 1, -1, 1)
    gx = (xs + flow[:, 0:1]) * (2.0 / (w - 1)) - 1.0
    gy = (ys + flow[:, 1:2]) * (2.0 / (h - 1)) - 1.0
    grid = torch.cat([gx, gy], dim=1).permute(0, 2, 3, 1)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)


def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(0.1, inplace=True))


class IFBlock(nn.Module):
    """Inputs at 1/(2*scale) -> flow/mask update at full size. Computes at 1/(4*scale)."""

    def __init__(self, in_ch: int, channels: int, depth: int = 4):
        super().__init__()
        self.down = nn.Sequential(conv(in_ch, channels // 2), conv(channels // 2, channels, 2))
        self.body = nn.Sequential(*[conv(channels, channels) for _ in range(depth)])
        self.up = nn.Sequential(nn.Conv2d(channels, 5 * 4, 3, padding=1), nn.PixelShuffle(2))
        nn.init.zeros_(self.up[0].weight)
        nn.init.zeros_(self.up[0].bias)

    def forward(self, x: torch.Tensor, scale: int) -> Tuple[torch.Tensor, torch.Tensor]:
        feat = self.down(x)
        out = self.up(self.body(feat) + feat)  # at 1/(2*scale)
        out = F.interpolate(out, scale_factor=2.0 * scale, mode="bilinear", align_corners=False)
        return out[:, :4] * (2.0 * scale), out[:, 4:5]


class Refine(nn.Module):
    """Residual correction of the fused frame, computed at 1/2 resolution."""

    def __init__(self, in_ch: int, channels: int = 32, out_ch: int = 3):
        super().__init__()
        self.net = nn.Sequential(conv(in_ch, channels, 2), conv(channels, channels), conv(channels, channels),
                                 nn.Conv2d(channels, out_ch * 4, 3, padding=1), nn.PixelShuffle(2))
        nn.init.zeros_(self.net[3].weight)
        nn.init.zeros_(self.net[3].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FlowInterp(nn.Module):
    """(frame0, frame1 (N,C,H,W) in [0,1], t (N,1,1,1)) -> frame at t (not clamped; callers clamp)."""

    def __init__(self, in_channels: int = 3, channels: Sequence[int] = (64, 48, 32), scales: Sequence[int] = (4, 2, 1),
                 refine_channels: int = 24, depth: int = 4, ensemble: bool = False):
        super().__init__()
        self.ensemble = bool(ensemble)
        if len(channels) != len(scales):
            raise ValueError("channels and scales must have the same length (one IFBlock per scale)")
        self.in_channels = in_channels
        self.scales = tuple(int(s) for s in scales)
        c = in_channels
        first = 2 * c + 1  # frame0, frame1, t plane
        later = 4 * c + 1 + 1 + 4  # + warped frames, mask, flow
        self.blocks = nn.ModuleList(IFBlock(first if i == 0 else later, ch, depth) for i, ch in enumerate(channels))
        self.refine = Refine(5 * c + 1 + 4, refine_channels, c)

    def forward_levels(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor,
                       all_levels: bool = False) -> List[torch.Tensor]:
        """The refined output, preceded (all_levels=True, training) by each level's fused frame."""
        levels: List[torch.Tensor] = []
        keep = (lambda f, m: levels.append(self._fuse(frame0, frame1, f, m)[0])) if all_levels else None
        flow, mask = self.estimate_flow(frame0, frame1, t, keep)
        c = self.in_channels
        fused, warped0, warped1 = self._fuse(frame0, frame1, flow, mask)
        residual = self.refine(torch.cat([frame0, frame1, warped0, warped1, fused, mask, flow], 1))
        return levels[:-1] + [fused + residual[:, :c]]

    def estimate_flow(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor,
                      on_level=None) -> Tuple[torch.Tensor, torch.Tensor]:
        """(flows F_t->0, F_t->1 (N,4,H,W) in pixels, fusion-mask logits (N,1,H,W)); H, W multiples of 16.

        Block inputs, and the warps feeding them, are made at 1/(2*scale): GridSample is the
        slowest op on CPU runtimes, so only the final warp runs at full resolution. Also what video
        colorization (serve/colorize_video.py) carries chroma with: F_1->0 moves frame 0 onto frame 1."""
        flow, mask = None, None
        for block, scale in zip(self.blocks, self.scales):
            f = 1.0 / (2 * scale)
            x0 = F.interpolate(frame0, scale_factor=f, mode="bilinear", align_corners=False)
            x1 = F.interpolate(frame1, scale_factor=f, mode="bilinear", align_corners=False)
            plane = t * torch.ones_like(x0[:, :1])
            if flow is None:
                flow, mask = block(torch.cat([x0, x1, plane], 1), scale)
            else:
                small = F.interpolate(flow, scale_factor=f, mode="bilinear", align_corners=False) * f
                small_mask = F.interpolate(mask, scale_factor=f, mode="bilinear", align_corners=False)
                w0, w1 = backward_warp(x0, small[:, :2]), backward_warp(x1, small[:, 2:4])
                d_flow, d_mask = block(torch.cat([x0, x1, w0, w1, plane, small_mask, small], 1), scale)
                flow, mask = flow + d_flow, mask + d_mask
            if on_level is not None:
                on_level(flow, mask)
        return flow, mask

    @staticmethod
    def _fuse(frame0, frame1, flow, mask):
        warped0 = backward_warp(frame0, flow[:, :2])
        warped1 = backward_warp(frame1, flow[:, 2:4])
        weight = torch.sigmoid(mask)
        return warped0 * weight + warped1 * (1 - weight), warped0, warped1

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x0, h, w = pad_tensor_to_multiple(frame0, PAD_MULTIPLE)
        x1, _, _ = pad_tensor_to_multiple(frame1, PAD_MULTIPLE)
        if not self.ensemble:
            return self.forward_levels(x0, x1, t)[-1][:, :, :h, :w]
        # RIFE's ensemble: the pair also runs mirrored and in reverse time (frames swapped, 1 - t), in the
        # same batch; the two estimates err differently, so their mean is closer (+0.1 dB on UCF101)
        n = x0.shape[0]
        mirror = torch.arange(x0.shape[-1] - 1, -1, -1, device=x0.device)  # a Gather: OpenVINO rejects Slice(-1)
        out = self.forward_levels(torch.cat([x0, x1.index_select(-1, mirror)]),
                                  torch.cat([x1, x0.index_select(-1, mirror)]), torch.cat([t, 1 - t]))[-1]
        return ((out[:n] + out[n:].index_select(-1, mirror)) * 0.5)[:, :, :h, :w]
