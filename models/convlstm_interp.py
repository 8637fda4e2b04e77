"""Seed 000's ConvLSTM, kept as the frame-interpolation baseline (grey or RGB).

ConvLSTMCell / ConvLSTM follow the seed: a multi-layer ConvLSTM whose cell input is weighted by
`alpha` against the recurrent state, run over a frame sequence, returning one output per input
frame plus one extra extrapolated step at the end. ConvLSTMInterpolator wraps it with the same
signature as the flow model, forward(frame0, frame1, t), so serving and evaluation are shared:
the two frames are the sequence (t enters as a constant input plane), the recurrence runs at 1/2
resolution to stay affordable on CPU.

predict="residual" is the seed's head: the states are decoded into an RGB residual on the linear
blend (1-t)*frame0 + t*frame1. It never learned (validation stuck at the blend): its encoder's
default-initialised features are small (|x| ~ 0.07), alpha halves them, the gates squash them
again, so the hidden states barely vary (std ~ 0.002); the zero-initialised head times that gives
the recurrence almost no gradient, and what a per-pixel RGB residual must undo (a moving edge's
ghost) is not a function such weak, local, half-resolution features can express. predict="flow"
(the default) addresses both: the frames enter centred, the encoder and gates use variance-keeping
(Kaiming) initialisation, and the head predicts what convolutions can learn from the recurrent
states: intermediate flows to both frames (at 1/2 resolution, upsampled), a fusion mask and a small
residual; both frames are backward-warped (grid_sample) and fused. Zero-initialised, it starts at
the blend exactly, like the seed. It sits on the blend for its first ~300-500 iterations while the
zero-initialised flows grow, then leaves it (README, "ConvLSTM"). An earlier run of 879 iterations in
two 11-minute chunks, each its own warm-up and cosine decay to ~0, was stopped on that plateau and
read as "does not learn"; a larger flow gain (x8, as flowinterp's blocks scale theirs) did not
shorten it.

`context` (3, the shipped weights; 0 = the model before) adds dilated 3x3 convs (dilation 2, 4, 8) over
the decoder's input beside its first layer: the flows were made by 3x3 stacks that reach about 10
half-resolution pixels, and the model lost most to flowinterp on motion over 4 px (README, "ConvLSTM").
Its output layer starts at zero, so the branch was grown from the context=0 weights and trained on.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .flowinterp import backward_warp
from .frame_padding import blend, pad_tensor_to_multiple

State = Tuple[torch.Tensor, torch.Tensor]


class ConvLSTMCell(nn.Module):
    """One ConvLSTM cell: a single conv computes the i, f, o, g gates from [alpha*input, hidden]."""

    def __init__(self, input_dim: int, hidden_dim: int, kernel_size: int = 3, alpha: float = 1.0):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.alpha = alpha
        self.conv = nn.Conv2d(input_dim + hidden_dim, 4 * hidden_dim, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, state: State) -> State:
        h, c = state
        gates = self.conv(torch.cat([self.alpha * x, h], dim=1))
        i, f, o, g = torch.split(gates, self.hidden_dim, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvLSTM(nn.Module):
    """Stacked ConvLSTM cells over a sequence (N, T, C, H, W).

    Returns (outputs, states): outputs holds the top layer's hidden state for each of the T
    inputs plus one extra step fed with its own last output (the seed's "extra frame at the end").
    """

    def __init__(self, input_dim: int, hidden_dims: Sequence[int] = (32, 32), kernel_size: int = 3,
                 alpha: float = 0.5):
        super().__init__()
        dims = [input_dim] + list(hidden_dims)
        self.cells = nn.ModuleList(ConvLSTMCell(dims[i], dims[i + 1], kernel_size, alpha)
                                   for i in range(len(hidden_dims)))
        self.readback = nn.Conv2d(dims[-1], input_dim, 1)  # top hidden -> next input for the extra step

    def init_hidden(self, like: torch.Tensor) -> List[State]:
        n, _, h, w = like.shape
        return [(like.new_zeros(n, cell.hidden_dim, h, w), like.new_zeros(n, cell.hidden_dim, h, w))
                for cell in self.cells]

    def step(self, x: torch.Tensor, states: List[State]) -> Tuple[torch.Tensor, List[State]]:
        new_states = []
        for cell, state in zip(self.cells, states):
            h, c = cell(x, state)
            new_states.append((h, c))
            x = h
        return x, new_states

    def forward(self, seq: torch.Tensor, states: Optional[List[State]] = None):
        states = states or self.init_hidden(seq[:, 0])
        outputs = []
        for k in range(seq.shape[1]):
            out, states = self.step(seq[:, k], states)
            outputs.append(out)
        out, states = self.step(self.readback(outputs[-1]), states)  # the extra step at the end
        outputs.append(out)
        return torch.stack(outputs, dim=1), states


class ConvLSTMInterpolator(nn.Module):
    """(frame0, frame1 (N,C,H,W) in [0,1], t (N,1,1,1)) -> frame at t (not clamped; callers clamp)."""

    def __init__(self, in_channels: int = 3, features: int = 24, hidden_dims: Sequence[int] = (32, 32),
                 alpha: float = 0.5, predict: str = "flow", context: int = 3):
        super().__init__()
        if predict not in ("flow", "residual"):
            raise ValueError(f"predict must be 'flow' or 'residual', not '{predict}'")
        self.in_channels, self.predict = in_channels, predict
        self.encode = nn.Sequential(nn.Conv2d(in_channels + 1, features, 3, stride=2, padding=1),
                                    nn.LeakyReLU(0.1, inplace=True),
                                    nn.Conv2d(features, features, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))
        self.lstm = ConvLSTM(features, hidden_dims, 3, alpha)
        top = hidden_dims[-1]
        # flow head: 4 flow + 1 mask channels at 1/2 resolution, + the residual as 4*C (PixelShuffle)
        out_ch = 4 * in_channels if predict == "residual" else 5 + 4 * in_channels
        self.decode = nn.Sequential(nn.Conv2d(2 * top + 1, 4 * features, 3, padding=1),
                                    nn.LeakyReLU(0.1, inplace=True),
                                    nn.Conv2d(4 * features, out_ch, 3, padding=1))
        if predict == "flow":  # keep the signal's scale through alpha and the gates (see the module doc)
            for m in [*self.encode, self.decode[0]]:
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, a=0.1, nonlinearity="leaky_relu")
                    nn.init.zeros_(m.bias)
            for cell in self.lstm.cells:
                nn.init.kaiming_normal_(cell.conv.weight, a=1.0)
                cell.conv.weight.data.mul_(2.0)
                hid = cell.hidden_dim  # gate order i, f, o, g: open input/output gates, keep the memory
                nn.init.zeros_(cell.conv.bias)
                nn.init.constant_(cell.conv.bias[: 3 * hid], 2.0)
        nn.init.zeros_(self.decode[2].weight)
        nn.init.zeros_(self.decode[2].bias)
        # context > 0: dilated 3x3 convs (dilation 2, 4, 8, ...) over the decoder's input, added to its
        # hidden layer, for reach over large motion; the last one zero-initialised (starts as without)
        self.context = None
        if context:
            layers, dim = [], 2 * top + 1
            for k in range(context):
                layers += [nn.Conv2d(dim, 2 * features, 3, padding=2 ** (k + 1), dilation=2 ** (k + 1)),
                           nn.LeakyReLU(0.1, inplace=True)]
                dim = 2 * features
            self.context = nn.Sequential(*layers, nn.Conv2d(dim, 4 * features, 1))
            nn.init.zeros_(self.context[-1].weight)
            nn.init.zeros_(self.context[-1].bias)

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.forward_with_flow(frame0, frame1, t)[0]

    def forward_with_flow(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor) -> tuple:
        """(frame at t, flows (N,4,H,W): F_t->0 and F_t->1 in pixels, or None for the residual head);
        train.interpolate --distill-weight supervises the flows with DIS's."""
        x0, h, w = pad_tensor_to_multiple(frame0, 2)
        x1, _, _ = pad_tensor_to_multiple(frame1, 2)
        plane = t * torch.ones_like(x0[:, :1])
        shift = 0.5 if self.predict == "flow" else 0.0  # centred inputs: the seed's [0,1] frames starve the gates
        seq = torch.stack([self.encode(torch.cat([x0 - shift, plane], 1)),
                           self.encode(torch.cat([x1 - shift, plane], 1))], dim=1)
        outputs, _ = self.lstm(seq)
        half_plane = t * torch.ones_like(outputs[:, 0, :1])
        states = torch.cat([outputs[:, 1], outputs[:, 2], half_plane], 1)
        hidden = self.decode[0](states)
        if self.context is not None:
            hidden = hidden + self.context(states)
        out = self.decode[2](self.decode[1](hidden))
        if self.predict == "residual":
            return (blend(x0, x1, t) + F.pixel_shuffle(out, 2))[:, :, :h, :w], None
        flow = F.interpolate(out[:, :4], scale_factor=2.0, mode="bilinear", align_corners=False) * 2.0
        mask = F.interpolate(out[:, 4:5], scale_factor=2.0, mode="bilinear", align_corners=False)
        tc = t.clamp(1e-3, 1 - 1e-3)
        weight = torch.sigmoid(mask + torch.log(1 - tc) - torch.log(tc))  # zero mask: weight 1-t, the blend
        fused = backward_warp(x0, flow[:, :2]) * weight + backward_warp(x1, flow[:, 2:4]) * (1 - weight)
        return (fused + F.pixel_shuffle(out[:, 5:], 2))[:, :, :h, :w], flow[:, :, :h, :w]
