"""ColorizeHint: ColorizeLab plus user colour hints, with a regression or a classification head.

Inputs (models/io.py contract, spec.hint_inputs): grey (N,1,H,W) L/100, hint_ab (N,2,H,W) = hint a, b
divided by AB_RANGE (so in [-1, 1]; zero where there is no hint) and hint_mask (N,1,H,W), 1 where a
hint is given. All-zero hints are automatic mode (Zhang et al. 2017, "Real-Time User-Guided Image
Colorization"). Output: RGB (N,3,H,W) in [0,1] with the exact input lightness, as ColorizeLab.

Why this shape: it is ColorizeLab with a 4-channel stem (the hint channels' first-layer weights start
at zero, so a warm start from colorize_lab begins exactly where it is) and a zero-initialised hint
skip that adds the quarter-resolution hint maps to the decoder output, so a hint reaches the head
without having to survive the bottleneck. `head`:
  - "regress": tanh ab as ColorizeLab (trained with L1 + saturation, train/colorize_losses.chroma_loss);
  - "classify": logits over the in-gamut ab bins (grid 10, Zhang et al. 2016, "Colorful Image
    Colorization") decoded by the annealed mean (softmax at `temperature`, then the expected bin
    centre), trained with rebalanced cross-entropy (train/colorize_losses.bin_classification_loss).
`chroma_gain` scales the decoded ab in both cases (chosen on held-out training images); an optional
`vividness` input [N,1] multiplies it per image (the user's colour strength; hints stay exact).

Hints also steer the output directly (no weights): the difference between each hint and the
prediction under it is spread over the image and added to the prediction; with no hint the
correction is exactly zero. `hint_bins` > 0 (the default, `spread_hints`): a bilateral grid over
lightness and local texture (`texture_bins`) -- each hint is splatted into the grid's cells, every
cell is blurred by a heavy-tailed multi-scale pyramid, and each pixel reads the cells of its own
lightness and texture, so a hint colours what is near it *and* about as light and as textured as
it, and stops at edges of either (a small guide-blind share fills areas no hint of their kind
reaches). Texture is what tells sky from foliage, or skin from cloth, of one lightness: on the
held-out training images it raised 10 hints from 27.77 to 28.28 dB (17 lightness bins, fallback
0.03 -> 9 x 3 bins, 0.01; scripts/colorize_hint_spread.py). `hint_bins` = 0: the first version's
luminance-blind pull-push pyramid (`propagate_hints`), which spreads hints as broad washes. On an
image with any hint the network's own chroma is scaled by `hinted_share` (0.25) before the
corrections are added: on the held-out training images the spread hints are a better guess than the
network's low-gain colours (10 hints, with the lightness-only spread: 26.59 dB at share 1, 27.77 at
0.25, 27.85 at 0; scripts/colorize_hint_spread.py). 0.25, not 0, keeps the network's say where hints
are far (0.06 dB mean cost there). Both are weight-free; the learned paths above refine this during
training.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .colorize_lab import AB_RANGE, ColorizeLab, vivid_gain
from .lab_color import lab_to_rgb, rgb_to_lab

HEADS = ("regress", "classify")
BIN_GRID = 10.0  # ab bin spacing in Lab units (Zhang 2016)
ANNEALED_T = 0.38  # Zhang 2016's annealed-mean temperature
PYRAMID_LEVELS = 8  # quarter resolution halved 7 times: 1x1 for chroma inputs up to 512 px
SUPPORT = 0.05  # hinted share of a cell at which its own hints and the coarser estimate weigh equally
HINT_BINS = 9  # lightness bins of spread_hints (L/100 spacing 1/8); tuned on the held-out training images
TEXTURE_BINS = 3  # bins of local texture in the same grid (0: lightness only, the first edge-aware version)
TEXTURE_SPAN = (-2.0, -1.3)  # log10 of the L/100 standard deviation in a 4x4 cell: smooth .. textured
HINT_FALLBACK = 0.01  # weight of the guide-blind spread where no hint of a pixel's lightness and texture reaches
HINTED_SHARE = 0.25  # share of the network's own chroma kept when an image has hints (see the docstring)


def _halve(x: torch.Tensor, channels: int) -> torch.Tensor:
    """2x2 average with stride 2 over a zero-padded map: ceil(s/2) cells at any size, 1 px included. A
    depthwise conv, not AvgPool: OpenVINO refuses a 2-px pooling window over a 1-px map."""
    weight = torch.full((channels, 1, 2, 2), 0.25, dtype=x.dtype, device=x.device)
    return F.conv2d(F.pad(x, (0, 1, 0, 1)), weight, stride=2, groups=channels)


def propagate_hints(residual: torch.Tensor, mask: torch.Tensor, levels: int = PYRAMID_LEVELS) -> torch.Tensor:
    """Pull-push fill of sparse (N,2,h,w) `residual` (zero off the hints) given hint `mask` (N,1,h,w):
    dense (N,2,h,w) that equals the residual where mask is 1 and blends towards coarser averages away
    from hints. Only AvgPool, Resize and arithmetic (exports to ONNX/TensorRT). No hints -> zeros."""
    sums, masses = [residual], [mask]
    for _ in range(levels - 1):
        sums.append(_halve(sums[-1], 2))
        masses.append(_halve(masses[-1], 1))
    estimate = sums[-1] / (masses[-1] + 1e-6)
    for total, mass in zip(reversed(sums[:-1]), reversed(masses[:-1])):
        coarse = F.interpolate(estimate, size=total.shape[-2:], mode="bilinear", align_corners=False)
        estimate = (total + SUPPORT * coarse) / (mass + SUPPORT)
    return estimate


def _pyramid_blur(x: torch.Tensor, channels: int, levels: int) -> torch.Tensor:
    """Sum over scales of x averaged over cells of 1, 2, 4, ... pixels, upsampled back (bilinear): a
    heavy-tailed (about 1/distance^2) blur, the weights of a normalised convolution. `channels` is a
    Python int so the export sees a fixed kernel."""
    pools = [x]
    for _ in range(levels - 1):
        pools.append(_halve(pools[-1], channels))
    total = pools[-1]
    for pooled in reversed(pools[:-1]):
        total = pooled + F.interpolate(total, size=pooled.shape[-2:], mode="bilinear", align_corners=False)
    return total


def hat_weights(value: torch.Tensor, bins: int) -> torch.Tensor:
    """(N,1,h,w) in [0,1] -> (N,bins,h,w) linear-interpolation weights over evenly spaced bin centres
    (they sum to 1): how a value is splatted into, and read back from, a bilateral grid."""
    centres = torch.linspace(0.0, 1.0, bins, dtype=value.dtype, device=value.device).view(1, -1, 1, 1)
    return torch.relu(1.0 - (value - centres).abs() * (bins - 1))


def texture_weights(grey: torch.Tensor, cell_mean: torch.Tensor, bins: int = TEXTURE_BINS,
                    span=TEXTURE_SPAN) -> torch.Tensor:
    """(N,1,H,W) L/100 and its 4x4-cell means `cell_mean` (avg_pool2d(grey, 4, ceil_mode=True), the
    lightness spread_hints reads) -> (N,bins,h,w) hat weights, at the chroma's quarter resolution, over the log
    standard deviation of the lightness within each 4x4 cell, from smooth (10^span[0] and below) to
    textured (10^span[1] and above). Sky and skin are smooth, leaves and fabric textured, at the same
    lightness. The variance is taken about the cell's mean, not as E[x^2] - E[x]^2, which fp16 and
    bf16 engines would round away."""
    near = F.interpolate(cell_mean, scale_factor=4.0, mode="nearest")[..., :grey.shape[-2], :grey.shape[-1]]
    variance = F.avg_pool2d((grey - near) ** 2, 4, ceil_mode=True)
    level = (0.5 * torch.log10(variance.clamp_min(1e-8)) - span[0]) / (span[1] - span[0])
    return hat_weights(level.clamp(0.0, 1.0), bins)


def spread_hints(residual: torch.Tensor, mask: torch.Tensor, lightness: torch.Tensor, bins: int = HINT_BINS,
                 fallback: float = HINT_FALLBACK, levels: int = PYRAMID_LEVELS, texture: torch.Tensor = None,
                 texture_bins: int = 0) -> torch.Tensor:
    """Edge-aware fill of sparse (N,2,h,w) `residual` (hint-weighted, zero off the hints) given hint
    `mask` (N,1,h,w) and the image's `lightness` (N,1,h,w, L/100): a bilateral grid over lightness
    and, given `texture` (texture_weights; `texture_bins` of them, a Python int so the export sees fixed
    kernels, as _pyramid_blur's `channels`), local texture. Hints are splatted
    into the grid's cells (hat weights), each cell is blurred (_pyramid_blur) and normalised by its
    blurred mask, and each pixel reads the cells of its own lightness and texture, plus `fallback`
    times the guide-blind estimate. Only Conv, Resize, Relu, Log and arithmetic (exports to
    ONNX/OpenVINO); no hints -> exactly zero."""
    weights = hat_weights(lightness, bins)  # (N,bins,h,w)
    if texture is not None:
        weights = (weights.unsqueeze(2) * texture.unsqueeze(1)).flatten(1, 2)  # (N,bins*texture_bins,h,w)
        bins = bins * texture_bins
    blurred = _pyramid_blur(torch.cat([residual[:, :1] * weights, residual[:, 1:] * weights, mask * weights,
                                       residual, mask], dim=1), 3 * bins + 3, levels)
    own_a, own_b, own_mass, blind, blind_mass = torch.split(blurred, [bins, bins, bins, 2, 1], dim=1)
    own = torch.cat([(own_a * weights).sum(1, keepdim=True), (own_b * weights).sum(1, keepdim=True)], dim=1)
    mass = (own_mass * weights).sum(1, keepdim=True)
    return (own + fallback * blind) / (mass + fallback * blind_mass + 1e-6)


@lru_cache(maxsize=4)
def ab_bins(grid: float = BIN_GRID) -> torch.Tensor:
    """(Q,2) centres of the ab grid cells that hold an sRGB colour at some lightness (Q=2xx at grid 10).

    A centre counts as in gamut when Lab -> RGB (clipped) -> Lab returns it within half a cell, at
    any of 51 lightness levels; deterministic, so the bins never need storing."""
    centres = torch.arange(-AB_RANGE, AB_RANGE + 1e-6, grid)
    a, b = torch.meshgrid(centres, centres, indexing="ij")
    ab = torch.stack([a.flatten(), b.flatten()], dim=1)  # (G,2)
    lightness = torch.linspace(2.0, 98.0, 51)
    lab = torch.cat([lightness.view(-1, 1, 1).expand(-1, ab.shape[0], 1),
                     ab.unsqueeze(0).expand(lightness.numel(), -1, -1)], dim=2)  # (L,G,3)
    img = lab.permute(2, 0, 1).unsqueeze(0).double()
    back = rgb_to_lab(lab_to_rgb(img))[0, 1:]  # (2,L,G)
    error = (back - img[0, 1:]).abs().amax(dim=0)  # (L,G)
    keep = (error < grid / 2).any(dim=0)
    return ab[keep].float().contiguous()


class ColorizeHint(ColorizeLab):
    def __init__(self, widths: Sequence[int] = (32, 64, 96, 128), chroma_gain: float = 1.0, head: str = "regress",
                 temperature: float = ANNEALED_T, hint_bins: int = HINT_BINS, hinted_share: float = HINTED_SHARE,
                 texture_bins: int = TEXTURE_BINS, texture_span: Sequence[float] = TEXTURE_SPAN,
                 hint_fallback: float = HINT_FALLBACK):
        super().__init__(widths, chroma_gain)
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, not {head!r}")
        self.head_kind, self.temperature = head, float(temperature)
        self.hint_bins = int(hint_bins)  # 0: luminance-blind pull-push (propagate_hints); weight-free either way
        self.hinted_share = float(hinted_share)  # 1: the network's chroma as in automatic mode
        self.texture_bins = int(texture_bins)  # 0: spread_hints guided by lightness only
        self.texture_span = tuple(float(v) for v in texture_span)
        self.hint_fallback = float(hint_fallback)
        self.stem[0] = nn.Conv2d(4, 16, 3, stride=2, padding=1)  # grey, hint a, hint b, hint mask
        with torch.no_grad():
            self.stem[0].weight[:, 1:].zero_()
        self.hint_skip = nn.Conv2d(3, self.head.in_channels, 3, padding=1)
        nn.init.zeros_(self.hint_skip.weight)
        nn.init.zeros_(self.hint_skip.bias)
        if head == "classify":
            bins = ab_bins()
            self.head = nn.Conv2d(self.head.in_channels, bins.shape[0], 1)
            self.register_buffer("bins", bins.t().reshape(2, -1, 1, 1).clone(), persistent=False)

    def trunk(self, grey: torch.Tensor, hint_ab: torch.Tensor, hint_mask: torch.Tensor) -> torch.Tensor:
        """The quarter-resolution features the head reads."""
        hints = torch.cat([hint_ab * hint_mask, hint_mask], dim=1)
        x = self.features(torch.cat([grey - 0.5, hints], dim=1))
        return x + self.hint_skip(F.avg_pool2d(hints, 4, ceil_mode=True) * 4.0)  # the features' ceil(H/4) x ceil(W/4)

    def logits_or_ab(self, grey: torch.Tensor, hint_ab: torch.Tensor, hint_mask: torch.Tensor) -> torch.Tensor:
        """The head's quarter-resolution output: bin logits (classify) or ab in Lab units (regress)."""
        out = self.head(self.trunk(grey, hint_ab, hint_mask))
        return out if self.head_kind == "classify" else torch.tanh(out) * AB_RANGE

    def head_ab(self, x: torch.Tensor) -> torch.Tensor:
        """Features -> ab in Lab units; equal to decode(head(x)), laid out for inference. Classify: the
        logits are computed as (N, h*w, Q) with 1/T folded into the weights, so the softmax runs over the
        last axis and the annealed mean is one MatMul. (The NCHW softmax over axis 1 made ONNX Runtime
        transpose 258 channels at 1/4 resolution twice: most of the model's time.)"""
        if self.head_kind == "regress":
            return torch.tanh(self.head(x)) * AB_RANGE
        n, _, h, w = x.shape
        weight = self.head.weight.flatten(1) / self.temperature
        logits = F.linear(x.flatten(2).transpose(1, 2), weight, self.head.bias / self.temperature)  # (N,hw,Q)
        ab = torch.softmax(logits, dim=-1) @ self.bins.flatten(1).t()  # (N,hw,2)
        return ab.transpose(1, 2).reshape(n, 2, h, w)

    def decode(self, out: torch.Tensor) -> torch.Tensor:
        """Head output -> ab in Lab units (classify: annealed mean over the bins)."""
        if self.head_kind == "regress":
            return out
        probs = torch.softmax(out / self.temperature, dim=1)
        return F.conv2d(probs, self.bins)

    def predict_ab(self, grey: torch.Tensor, hint_ab: torch.Tensor = None, hint_mask: torch.Tensor = None,
                   gain: Union[float, torch.Tensor] = 1.0) -> torch.Tensor:
        """(N,1,H,W) L/100 and hints -> (N,2,H,W) a, b in Lab units: the prediction times `gain` (and
        times `hinted_share` on an image with hints), plus the spread hint corrections (so hinted colours
        stay exact at any gain); no hints = automatic."""
        if hint_ab is None:
            hint_ab = grey.new_zeros(grey.shape[0], 2, *grey.shape[2:])
            hint_mask = grey.new_zeros(grey.shape)
        return self.hinted_ab(self.head_ab(self.trunk(grey, hint_ab, hint_mask)), grey, hint_ab, hint_mask, gain)

    def hinted_ab(self, ab: torch.Tensor, grey: torch.Tensor, hint_ab: torch.Tensor, hint_mask: torch.Tensor,
                  gain: Union[float, torch.Tensor]) -> torch.Tensor:
        """The network's quarter-resolution ab (Lab units) -> the output's ab at the input's size: times
        `gain` (and `hinted_share` on an image with hints) plus the spread hint corrections. Split out of
        predict_ab so training can score the hinted output itself (train.colorize --hinted-weight)."""
        ab = ab * gain
        if self.hinted_share != 1.0:  # any hint: 1 - (1 - share) = share; none: exactly 1 (automatic unchanged)
            hinted_image = (hint_mask.amax(dim=(1, 2, 3), keepdim=True) > 0).to(ab.dtype)
            ab = ab * (1.0 - (1.0 - self.hinted_share) * hinted_image)
        mask = F.avg_pool2d(hint_mask, 4, ceil_mode=True)  # quarter resolution (AvgPool exports; adaptive does not)
        hinted = F.avg_pool2d(hint_ab * hint_mask, 4, ceil_mode=True) * AB_RANGE
        residual = hinted - ab * mask
        if self.hint_bins > 0:
            lightness = F.avg_pool2d(grey, 4, ceil_mode=True)
            texture = (texture_weights(grey, lightness, self.texture_bins, self.texture_span)
                       if self.texture_bins > 0 else None)
            ab = ab + spread_hints(residual, mask, lightness, self.hint_bins, self.hint_fallback, texture=texture,
                                   texture_bins=self.texture_bins)
        else:
            ab = ab + propagate_hints(residual, mask)
        return F.interpolate(ab, size=grey.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, grey: torch.Tensor, hint_ab: torch.Tensor = None, hint_mask: torch.Tensor = None,
                vividness: Optional[torch.Tensor] = None) -> torch.Tensor:
        """`vividness` [N,1] scales the network's own colour (hints stay exact): models.io.VIVIDNESS."""
        ab = self.predict_ab(grey, hint_ab, hint_mask, vivid_gain(self.chroma_gain, vividness))
        return lab_to_rgb(torch.cat([grey * 100.0, ab], dim=1))


def warm_start_from_lab(model: ColorizeHint, state: dict) -> int:
    """Copy a ColorizeLab state dict into `model` where shapes allow; the grey channel of the stem's
    first conv is copied and its hint channels stay zero. Returns how many tensors were taken."""
    own = model.state_dict()
    taken = 0
    for name, tensor in state.items():
        if name not in own:
            continue
        if own[name].shape == tensor.shape:
            own[name] = tensor.clone()
            taken += 1
        elif name == "stem.0.weight" and own[name].shape[1] == 4 and tensor.shape[1] == 1:
            own[name] = torch.cat([tensor, torch.zeros_like(tensor).repeat(1, 3, 1, 1)], dim=1)
            taken += 1
    model.load_state_dict(own)
    return taken
