"""Is the uncertainty map honest? Calibration of predicted per-pixel std against the real error.

`python -m evaluate --task uncertainty --model flashsr_x2 --sets BSD68,Set14 --json` runs
`evaluate_uncertainty` with the SR protocol (HR mod-crop, LR by PIL bicubic, BT.601 Y, `scale` pixels
of border cropped), the uncertainty pipeline on the whole LR image (no centre crop), and per image:

- spearman: Spearman rank correlation between the predicted std and |mean prediction - HR| on Y.
- ause: area between the sparsification curve ordered by the predicted std and the oracle curve
  ordered by the true error. A curve is the MAE (Y, 0-255) of the pixels left after removing the
  most uncertain fraction f, f = 0, 1/50, ..., 49/50, divided by the MAE at f = 0 (so images with
  different error levels weigh the same); the area is the trapezoid rule over f. 0 = perfect ranking.
- ause_proxy / spearman_proxy: the same for a free baseline, the Sobel gradient magnitude of the
  bicubic upsample; a map that does not beat it tells the user nothing new.
- psnr_mean / psnr_single: Y-PSNR of the mean of the K passes and of one pass (for TTA: the plain model).
Set values are means over images.
"""
from __future__ import annotations

import sys
import time
from typing import Dict, List

import numpy as np
from scipy.stats import spearmanr
from skimage.filters import sobel

from common.metrics import psnr_y, quantize, rgb_to_y
from common.resize import bicubic_upscale
from models import get_spec
from models.checkpoint import CheckpointError
from serve.contract import ServeError
from serve.uncertainty import estimate_uncertainty

from .common import load_set
from .sr import DEFAULT_SETS, make_sr_pair
from .sr import plan as sr_plan

SPARSIFICATION_STEPS = 50
METRICS = ()  # calibration rows are not stored in sidecars
__all__ = ["DEFAULT_SETS", "evaluate_uncertainty"]


def rank_correlation(uncertainty: np.ndarray, error: np.ndarray) -> float:
    """Spearman's rho over all pixels (0 when either map is constant)."""
    u, e = np.ravel(uncertainty), np.ravel(error)
    if u.size < 2 or np.ptp(u) == 0 or np.ptp(e) == 0:
        return 0.0
    return float(spearmanr(u, e).statistic)


def removal_fractions(steps: int = SPARSIFICATION_STEPS) -> np.ndarray:
    return np.arange(steps) / steps


def sparsification_curve(uncertainty: np.ndarray, error: np.ndarray, steps: int = SPARSIFICATION_STEPS) -> np.ndarray:
    """MAE of the pixels kept after removing the most uncertain fraction f, normalised to 1 at f = 0."""
    order = np.argsort(-np.ravel(uncertainty), kind="stable")
    err = np.ravel(error).astype(np.float64)[order]
    n = err.size
    tail_sums = np.concatenate([np.cumsum(err[::-1])[::-1], [0.0]])  # tail_sums[i] = err[i:].sum()
    starts = np.floor(removal_fractions(steps) * n).astype(int)
    curve = tail_sums[starts] / (n - starts)
    return curve / curve[0] if curve[0] > 0 else np.zeros_like(curve)


def ause(uncertainty: np.ndarray, error: np.ndarray, steps: int = SPARSIFICATION_STEPS) -> float:
    """Area between the curve ordered by `uncertainty` and the oracle ordered by `error` itself."""
    gap = sparsification_curve(uncertainty, error, steps) - sparsification_curve(error, error, steps)
    return float(np.trapezoid(gap, removal_fractions(steps)))


def y_error(prediction: np.ndarray, hr: np.ndarray, crop: int) -> np.ndarray:
    """|prediction - HR| on BT.601 Y (0-255, after 8-bit quantisation), border cropped."""
    diff = np.abs(rgb_to_y(quantize(prediction)) - rgb_to_y(quantize(hr)))
    return _crop(diff, crop)


def edge_proxy(lr: np.ndarray, scale: int, crop: int) -> np.ndarray:
    """The trivial uncertainty: Sobel gradient magnitude of the bicubic upsample's Y."""
    return _crop(sobel(rgb_to_y(quantize(bicubic_upscale(lr, scale)))), crop)


def _crop(img: np.ndarray, crop: int) -> np.ndarray:
    return img[crop:-crop, crop:-crop] if crop > 0 else img


def image_scores(std_map: np.ndarray, mean: np.ndarray, single: np.ndarray, hr: np.ndarray, lr: np.ndarray,
                 scale: int, steps: int = SPARSIFICATION_STEPS) -> Dict[str, float]:
    """Every calibration number for one image (inputs in [0,1]; std_map sHxsW)."""
    error = y_error(mean, hr, scale)
    std = _crop(std_map, scale)
    proxy = edge_proxy(lr, scale, scale)
    return {"spearman": rank_correlation(std, error), "spearman_proxy": rank_correlation(proxy, error),
            "ause": ause(std, error, steps), "ause_proxy": ause(proxy, error, steps),
            "psnr_mean": psnr_y(mean, hr, crop=scale), "psnr_single": psnr_y(single, hr, crop=scale)}


def evaluate_uncertainty(model_name: str, sets: Dict[str, list], passes: int = 40, estimator: str = "mc",
                         backend: str = "auto", chunk: int = 0, seed: int = 0, weights=None,
                         steps: int = SPARSIFICATION_STEPS, log=sys.stderr) -> List[dict]:
    """One row per set: model, set, spearman, ause, ause_proxy, psnr_mean, psnr_single (+ context)."""
    scale = get_spec(model_name).scale
    options = {"weights_path": str(weights)} if weights else {}
    rows = []
    for set_name, images in sets.items():
        per_image: List[Dict[str, float]] = []
        started = time.perf_counter()
        for name, hr in images:
            hr, lr = make_sr_pair(hr, scale)
            result = estimate_uncertainty(lr, model_name, passes, backend, estimator, patch=1, top_n=0, seed=seed,
                                          chunk=chunk, crop_to_patches=False, **options)
            scores = image_scores(result.std_map, result.mean_prediction, result.one_prediction, hr, lr, scale, steps)
            per_image.append(scores)
            if log is not None:
                print(f"  {set_name}/{name}: " + " ".join(f"{k} {v:.4f}" for k, v in scores.items()), file=log,
                      flush=True)
        mean = {k: round(float(np.mean([s[k] for s in per_image])), 4) for k in per_image[0]}
        rows.append({"model": model_name, "set": set_name, **mean, "estimator": estimator,
                     "passes": int(result.summary["passes"]), "scale": scale, "images": len(per_image),
                     "error_metric": f"MAE on Y, {steps} removal steps, curves normalised", "seconds":
                     round(time.perf_counter() - started, 2)})
    return rows


def format_row(row: dict) -> str:
    """One human-readable line per set (stderr of the CLI)."""
    return (f"{row['model']:<12} {row['set']:<7} {row['estimator']} K={row['passes']:<3} "
            f"spearman {row['spearman']:.3f} "
            f"(proxy {row['spearman_proxy']:.3f})  AUSE {row['ause']:.4f} (proxy {row['ause_proxy']:.4f})  "
            f"PSNR mean {row['psnr_mean']:.3f} / single {row['psnr_single']:.3f}  ({row['images']} images, "
            f"{row['seconds']:.1f} s)")


load_one_set = load_set  # (set name, --limit) -> what evaluate_job takes per set


def plan(args) -> List[str]:
    names = [name for name, _ in sr_plan(args) if name != "bicubic"]
    if not names:
        raise SystemExit("error: --task uncertainty needs a registered model (bicubic has no uncertainty)")
    return names



def evaluate_job(name, sets, args) -> List[dict]:
    try:
        return evaluate_uncertainty(name, sets, args.passes, args.estimator, args.backend, args.chunk, args.seed,
                                    args.weights, log=None if args.json else sys.stderr)
    except (ServeError, CheckpointError) as exc:
        raise SystemExit(f"error: {exc}") from None


line = format_row
table = None  # no Markdown table for calibration (README's is written by hand from the JSON)
