"""Frame interpolation benchmark: RGB PSNR and SSIM (8-bit-quantised frames) of the frame at t = 0.5.

Sets: 'UCF101' is the real DVF triplet set under $STSR_DATA/vfi/UCF101 (N/frame_00.png,
frame_01_gt.png, frame_02.png; evaluation only); 'CDFI' makes real triplets (i, i+1, i+2) from the
854x480 frame sequence in vfi/sequences/cdfi_854x480; any other name is a benchmark image folder
(e.g. BSD68) turned into held-out synthetic triplets (common/motion.py, 256 px, t=0.5, fixed seed).
`blend` is the linear cross-fade baseline. Output: one object per (model, set) with keys model, set,
psnr, ssim (+ images, seconds).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from common.images import ImageLoadError, list_images, read_image
from common.metrics import psnr_rgb, quantize, ssim
from common.motion import heldout_triplets
from common.paths import data_root
from models.io import TIMESTEP

from .common import by_model_and_set, load_set, markdown_table, mean, model_runner, select_models

BASELINE = "blend"
SEQUENCES = {"CDFI": "vfi/sequences/cdfi_854x480"}  # optional: --sets CDFI
REAL_SETS = {"UCF101": ("vfi/UCF101", ("frame_00.png", "frame_01_gt.png", "frame_02.png"))}
HELDOUT_SEED = 2024
HELDOUT_SIZE = 256
DEFAULT_SETS = "BSD68,UCF101"
METRICS = ("psnr", "ssim")


def _real_triplets(name: str, limit: int) -> List[tuple]:
    folder, files = REAL_SETS[name]
    root = data_root() / folder
    if not root.is_dir():
        raise SystemExit(f"error: triplet set '{name}' not found at {root} (set STSR_DATA)")
    out = []
    for sub in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name)):
        if limit and len(out) >= limit:
            break
        try:
            f0, ft, f1 = (read_image(sub / f).rgb for f in files)
        except ImageLoadError as exc:
            print(f"warning: skipping {sub.name}: {exc}", file=sys.stderr)
            continue
        out.append((f0, ft, f1, 0.5))
    if not out:
        raise SystemExit(f"error: no readable triplets under {root}")
    return out


def load_triplets(name: str, limit: int = 0) -> List[tuple]:
    """[(frame0, frame_t, frame1, t)] for a real set or a synthetic one made from a benchmark folder."""
    if name in REAL_SETS:
        return _real_triplets(name, limit)
    if name in SEQUENCES:  # consecutive real frames: (i, i+1, i+2) with i+1 as the truth, disjoint triplets
        folder = data_root() / SEQUENCES[name]
        frames = list_images(folder) if folder.is_dir() else []
        if len(frames) < 3:
            raise SystemExit(f"error: frame sequence '{name}' not found (or under 3 frames) at {folder}")
        starts = range(0, len(frames) - 2, 2)[: limit or None]
        return [tuple(read_image(frames[i + k]).rgb for k in range(3)) + (0.5,) for i in starts]
    images = [img for _, img in load_set(name, limit)]
    return heldout_triplets(images, size=HELDOUT_SIZE, seed=HELDOUT_SEED)


def evaluate_interpolation(model_name: str, sets: Dict[str, list], weights: Optional[Path] = None,
                           device: str = "cpu") -> List[dict]:
    if model_name == BASELINE:
        def interpolate(f0, f1, **scalars):
            t = scalars[TIMESTEP]
            return (1 - t) * f0 + t * f1
    else:
        interpolate = model_runner(model_name, weights, device)
    rows = []
    for set_name, triplets in sets.items():
        psnrs, ssims, seconds = [], [], 0.0
        for f0, ft, f1, t in triplets:
            start = time.perf_counter()
            pred = interpolate(f0, f1, **{TIMESTEP: t})
            seconds += time.perf_counter() - start
            psnrs.append(psnr_rgb(pred, ft))
            ssims.append(ssim(quantize(pred), quantize(ft)))
        rows.append({"model": model_name, "set": set_name, "psnr": mean(psnrs, 4), "ssim": mean(ssims, 5),
                     "images": len(triplets), "seconds": round(seconds, 3)})
    return rows


load_one_set = load_triplets  # (set name, --limit) -> what evaluate_job takes per set


def plan(args) -> List[str]:
    return select_models(args.model, "interpolate", BASELINE)



def evaluate_job(name, sets, args) -> List[dict]:
    return evaluate_interpolation(name, sets, args.weights if name != BASELINE else None, args.device)


def line(r: dict) -> str:
    return (f"{r['model']:<16} {r['set']:<8} PSNR {r['psnr']:.3f} dB  SSIM {r['ssim']:.4f}  "
            f"({r['images']} triplets, {r['seconds']:.2f} s)")


def table(rows: List[dict], sets: List[str], args=None) -> str:
    body = [[model, *(f"{per_set[s]['psnr']:.2f} / {per_set[s]['ssim']:.4f}" if s in per_set else "-" for s in sets)]
            for (model,), per_set in by_model_and_set(rows).items()]
    return markdown_table(["model", *(f"{s} PSNR / SSIM" for s in sets)], body)
