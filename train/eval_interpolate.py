"""`python -m train.evaluate --task interpolate --model flowinterp,convlstm_interp,blend --sets BSD68,UCF101 --json`.

Sets: 'UCF101' is the real DVF triplet set under $STSR_DATA/vfi/UCF101 (N/frame_00.png,
frame_01_gt.png, frame_02.png; evaluation only); 'CDFI' makes real triplets (i, i+1, i+2) from the
854x480 frame sequence in vfi/sequences/cdfi_854x480; any other name is a benchmark image folder
(e.g. BSD68) turned into held-out synthetic triplets (train/interp_data.py, 256 px, t=0.5, fixed seed).
`blend` is the linear cross-fade baseline. Scores: RGB PSNR and SSIM on 8-bit-quantised frames.
Output: one object per (model, set) with keys model, set, psnr, ssim (+ images, seconds).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from common.images import ImageLoadError, list_images, read_image
from common.metrics import psnr_rgb, quantize, ssim
from common.paths import data_root
from models import REGISTRY, get_spec, load_model
from models.checkpoint import CheckpointError, record_metrics

from .interp_data import heldout_triplets

SEQUENCES = {"CDFI": "vfi/sequences/cdfi_854x480"}  # optional: --sets CDFI
REAL_SETS = {"UCF101": ("vfi/UCF101", ("frame_00.png", "frame_01_gt.png", "frame_02.png"))}
HELDOUT_SEED = 2024
HELDOUT_SIZE = 256
DEFAULT_SETS = "BSD68,UCF101"
SR_DEFAULT_SETS = "Set5,Set14,BSD100"


def load_triplets(name: str, limit: int = 0) -> List[tuple]:
    """[(frame0, frame_t, frame1, t)] for a real set or a synthetic one made from a benchmark folder."""
    if name in REAL_SETS:
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
    if name in SEQUENCES:  # consecutive real frames: (i, i+1, i+2) with i+1 as the truth, disjoint triplets
        folder = data_root() / SEQUENCES[name]
        frames = list_images(folder) if folder.is_dir() else []
        if len(frames) < 3:
            raise SystemExit(f"error: frame sequence '{name}' not found (or under 3 frames) at {folder}")
        starts = range(0, len(frames) - 2, 2)[: limit or None]
        return [tuple(read_image(frames[i + k]).rgb for k in range(3)) + (0.5,) for i in starts]
    from .evaluate import load_set

    images = [img for _, img in load_set(name, limit)]
    return heldout_triplets(images, size=HELDOUT_SIZE, seed=HELDOUT_SEED)


def make_interpolator(model_name: str, weights: Optional[Path], device: torch.device):
    """f(frame0, frame1, t) -> frame (HxWx3 float), for a registered model or the 'blend' baseline."""
    if model_name == "blend":
        return lambda f0, f1, t: (1 - t) * f0 + t * f1
    try:
        model = load_model(model_name, weights).to(device)
    except CheckpointError as exc:
        raise SystemExit(f"error: {exc}")

    @torch.inference_mode()
    def run(f0: np.ndarray, f1: np.ndarray, t: float) -> np.ndarray:
        x0, x1 = (torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1))).unsqueeze(0).to(device) for f in (f0, f1))
        out = model(x0, x1, torch.full((1, 1, 1, 1), float(t), device=device))
        return out.clamp_(0, 1)[0].cpu().numpy().transpose(1, 2, 0)

    return run


def evaluate(model_name: str, sets: Dict[str, list], weights=None, device: str = "cpu") -> List[dict]:
    interpolate = make_interpolator(model_name, weights, torch.device(device))
    rows = []
    for set_name, triplets in sets.items():
        psnrs, ssims, seconds = [], [], 0.0
        for f0, ft, f1, t in triplets:
            start = time.perf_counter()
            pred = interpolate(f0, f1, t)
            seconds += time.perf_counter() - start
            psnrs.append(psnr_rgb(pred, ft))
            ssims.append(ssim(quantize(pred), quantize(ft)))
        rows.append({"model": model_name, "set": set_name, "psnr": round(float(np.mean(psnrs)), 4),
                     "ssim": round(float(np.mean(ssims)), 5), "images": len(triplets), "seconds": round(seconds, 3)})
    return rows


def plan(models: str) -> List[str]:
    names = [n.strip() for n in models.split(",") if n.strip()]
    if names == ["all"]:
        return [s.name for s in REGISTRY.values() if s.task == "interpolate"] + ["blend"]
    for name in names:
        if name == "blend":
            continue
        try:
            spec = get_spec(name)
        except KeyError as exc:
            raise SystemExit(f"error: {exc.args[0]}")
        if spec.task != "interpolate":
            raise SystemExit(f"error: '{name}' is a {spec.task} model, not interpolate")
    return names


def main_interpolate(args, set_names: List[str]) -> int:
    """The --task interpolate branch of train.evaluate."""
    names = plan(args.model)
    if args.sets == SR_DEFAULT_SETS:  # --sets not given: the interpolation sets, not the SR ones
        set_names = DEFAULT_SETS.split(",")
    sets = {name: load_triplets(name, args.limit) for name in set_names}
    torch.set_grad_enabled(False)
    rows = []
    for name in names:
        result = evaluate(name, sets, args.weights if name != "blend" else None, args.device)
        rows += result
        if args.update_sidecar and name != "blend":
            path = args.weights or get_spec(name).weights_path
            record_metrics(path, result, ("psnr", "ssim"))
        if not args.json:
            for r in result:
                print(f"{r['model']:<16} {r['set']:<8} PSNR {r['psnr']:.3f} dB  SSIM {r['ssim']:.4f}  "
                      f"({r['images']} triplets, {r['seconds']:.2f} s)", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    if args.markdown:
        print(markdown_table(rows, set_names))
    return 0


def markdown_table(rows: List[dict], sets: List[str]) -> str:
    keyed: Dict[str, dict] = {}
    for r in rows:
        keyed.setdefault(r["model"], {})[r["set"]] = r
    lines = ["| model | " + " | ".join(f"{s} PSNR / SSIM" for s in sets) + " |", "|" + "---|" * (1 + len(sets))]
    for model, per_set in keyed.items():
        cells = [f"{per_set[s]['psnr']:.2f} / {per_set[s]['ssim']:.4f}" if s in per_set else "-" for s in sets]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
