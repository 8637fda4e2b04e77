"""Where an interpolator loses to another: PSNR by motion size on a triplet set (a diagnostic).

    python scripts/interp_motion_bins.py --models convlstm_interp,flowinterp --set UCF101
        [--weights convlstm_interp=runs/NAME/model.safetensors]

Each triplet is put in a bin by its motion: the 90th percentile of |F0->1| (OpenCV's DIS flow between
the two input frames, common/dis_flow.py), in pixels. Prints a markdown table with the triplet count,
the blend's mean RGB PSNR and each model's, per bin and over all, and each bin's share of the gap
between the first two models. Why: a model whose flows reach only a few pixels loses on large motion
alone, and a mean over the whole set hides where.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.dis_flow import pair_flows  # noqa: E402
from common.metrics import psnr_rgb  # noqa: E402
from evaluate.common import model_runner  # noqa: E402
from evaluate.interpolate import TIMESTEP, load_triplets  # noqa: E402

BINS = ((0, 1), (1, 2), (2, 4), (4, 8), (8, 16), (16, float("inf")))


def motion_p90(f0: np.ndarray, f1: np.ndarray) -> float:
    forward, _ = pair_flows(f0, f1)
    return float(np.percentile(np.linalg.norm(forward, axis=-1), 90))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="convlstm_interp,flowinterp")
    p.add_argument("--set", default="UCF101")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--weights", action="append", default=[], help="NAME=checkpoint (repeatable)")
    args = p.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    if any("=" not in w for w in args.weights):
        p.error("--weights takes NAME=checkpoint")
    weights = dict(w.split("=", 1) for w in args.weights)
    runners = {n: model_runner(n, weights.get(n)) for n in names}  # as `python -m evaluate` runs them
    motion, scores = [], {"blend": [], **{n: [] for n in names}}
    for f0, ft, f1, t in load_triplets(args.set, args.limit):
        motion.append(motion_p90(f0, f1))
        scores["blend"].append(psnr_rgb((1 - t) * f0 + t * f1, ft))
        for n, run in runners.items():
            scores[n].append(psnr_rgb(run(f0, f1, **{TIMESTEP: t}), ft))
    motion = np.array(motion)
    table = {k: np.array(v) for k, v in scores.items()}
    gap = table[names[1]] - table[names[0]] if len(names) > 1 else None
    head = ["p90 motion (px)", "triplets", *table]
    print("| " + " | ".join(head + (["share of the gap"] if gap is not None else [])) + " |")
    print("|" + "---|" * (len(head) + (gap is not None)))
    for lo, hi in BINS + ((0, float("inf")),):
        sel = (motion >= lo) & (motion < hi)
        if not sel.any():
            continue
        label = "all" if (lo, hi) == (0, float("inf")) else (f"{lo}-{hi}" if hi < float("inf") else f">= {lo}")
        cells = [label, str(int(sel.sum())), *(f"{v[sel].mean():.2f}" for v in table.values())]
        if gap is not None:
            cells.append(f"{gap[sel].sum() / gap.sum():.2f}" if gap.sum() else "-")
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
