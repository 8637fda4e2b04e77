"""Colorization losses. Seed 000's three (MSE, MEP, 1 - SSIM) on RGB, and the Lab model's chroma loss.

All take prediction and target as (N,3,H,W) RGB in [0,1] except `chroma_loss`, which works on
Lab ab maps (N,2,H,W) in Lab units (see models.lab_color).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from models.colorize_lab import AB_RANGE

MEP_ALPHA = 0.5  # the seed's weighting between MSE and the entropy term


def mep_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = MEP_ALPHA) -> torch.Tensor:
    """Seed 000's LossMEP: alpha * MSE + (1 - alpha) * cross-entropy -sum(target * log(pred)).

    The seed sums the entropy term over the last axis; here it is averaged over pixels too, so the
    weighting does not depend on the crop width (the seed's form up to that constant).
    """
    entropy = -(target * torch.log(pred.clamp(min=0.0) + 1e-8)).mean()
    return alpha * F.mse_loss(pred, target) + (1 - alpha) * entropy


def _gaussian_window(channels: int, like: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_torch(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean SSIM (11x11 Gaussian, sigma 1.5, data range 1; the standard constants), per channel."""
    c = pred.shape[1]
    window = _gaussian_window(c, pred)
    blur = lambda x: F.conv2d(x, window, groups=c)  # noqa: E731  ('valid': no padding artefacts)
    mu_p, mu_t = blur(pred), blur(target)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(pred * target) - mu_p * mu_t
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return ssim_map.mean()


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 1.0 - ssim_torch(pred, target)


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred, target)


RGB_LOSSES = {"mse": mse_loss, "mep": mep_loss, "ssim": ssim_loss}


def chroma_loss(ab_pred: torch.Tensor, ab_true: torch.Tensor, rebalance: float = 1.0,
                saturation: float = 1.0) -> torch.Tensor:
    """Colour-rebalanced L1 on ab plus a per-image saturation-matching term.

    Regression to the mean of plausible colours gives sepia. Two counterweights: each pixel's L1 is
    weighted by (1 + rebalance * chroma_true / 40), so the rarer saturated pixels count more, and
    images whose mean predicted chroma falls short of the true one pay the shortfall (one-sided:
    never penalised for being as colourful as the truth).
    """
    pred, true = ab_pred / AB_RANGE, ab_true / AB_RANGE
    chroma_true = torch.sqrt((ab_true**2).sum(dim=1, keepdim=True) + 1e-6)
    weight = 1.0 + rebalance * chroma_true / 40.0
    l1 = (weight * (pred - true).abs()).mean() / weight.mean()
    chroma_pred = torch.sqrt((ab_pred**2).sum(dim=1, keepdim=True) + 1e-6)
    shortfall = F.relu(chroma_true.mean(dim=(1, 2, 3)) - chroma_pred.mean(dim=(1, 2, 3))) / AB_RANGE
    return l1 + saturation * shortfall.mean()


# ---------------------------------------------------------------- ab-bin classification (Zhang et al. 2016)

def soft_encode(ab: torch.Tensor, bins: torch.Tensor, neighbours: int = 5, sigma: float = 5.0) -> torch.Tensor:
    """(N,2,h,w) ab in Lab units -> (N,Q,h,w) target distribution: the `neighbours` nearest bin centres
    weighted by a Gaussian of their distance (Zhang 2016's soft encoding)."""
    n, _, h, w = ab.shape
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2)
    dist2 = torch.cdist(flat, bins.to(flat)).pow(2)  # (P,Q)
    near_d2, near_idx = dist2.topk(neighbours, dim=1, largest=False)
    weight = torch.softmax(-near_d2 / (2 * sigma**2), dim=1)
    target = torch.zeros_like(dist2).scatter_(1, near_idx, weight)
    return target.reshape(n, h, w, -1).permute(0, 3, 1, 2)


def rebalance_weights(ab_samples: torch.Tensor, bins: torch.Tensor, mix: float = 0.5,
                      sigma: float = 5.0) -> torch.Tensor:
    """(Q,) class-rebalancing weights from a sample of true ab values (P,2): the bin histogram smoothed
    by a Gaussian over bin distance, mixed with uniform (`mix`), inverted and normalised so the expected
    weight under the data is 1 (Zhang 2016, lambda = 0.5, sigma = 5)."""
    nearest = torch.cdist(ab_samples.float(), bins).argmin(dim=1)
    hist = torch.bincount(nearest, minlength=bins.shape[0]).float()
    hist = hist / hist.sum().clamp(min=1.0)
    kernel = torch.exp(-torch.cdist(bins, bins).pow(2) / (2 * sigma**2))
    smooth = kernel @ hist
    smooth = smooth / smooth.sum()
    weights = 1.0 / ((1 - mix) * smooth + mix / bins.shape[0])
    return weights / (smooth * weights).sum()


def bin_classification_loss(logits: torch.Tensor, ab_true: torch.Tensor, bins: torch.Tensor,
                            weights: torch.Tensor) -> torch.Tensor:
    """Rebalanced cross-entropy between the head's bin logits (N,Q,h,w) and the soft-encoded truth.

    The truth ab (N,2,H,W) is area-averaged to the logits' size first; each pixel's loss is weighted
    by the rebalancing weight of its truth's most likely bin, so rare saturated colours are not
    averaged away to sepia."""
    small = F.adaptive_avg_pool2d(ab_true, logits.shape[-2:])
    target = soft_encode(small, bins)
    pixel_weight = weights.to(logits)[target.argmax(dim=1)]  # (N,h,w)
    ce = -(target * torch.log_softmax(logits.float(), dim=1)).sum(dim=1)
    return (pixel_weight * ce).mean()


def hinted_output_loss(model, logits: torch.Tensor, grey: torch.Tensor, hints: tuple,
                       ab_true: torch.Tensor) -> torch.Tensor:
    """L1 (in AB_RANGE units) between the truth and what a hint model outputs for images with hints: the
    decoded network chroma times its gain and hinted share plus the weight-free spread of the hints
    (models.colorize_hint.ColorizeHint.hinted_ab). The bin loss alone trains the network's own guess,
    which the output then mostly overrides with the spread; this trains it to fill what the spread
    misses. Images without hints count zero."""
    hint_ab, hint_mask = hints
    out = model.hinted_ab(model.decode(logits), grey, hint_ab, hint_mask, model.chroma_gain)
    hinted = (hint_mask.amax(dim=(1, 2, 3)) > 0).to(out.dtype)  # (N,)
    if not bool(hinted.any()):
        return out.new_zeros(())
    per_image = ((out - ab_true).abs() / AB_RANGE).mean(dim=(1, 2, 3))
    return (per_image * hinted).sum() / hinted.sum()
