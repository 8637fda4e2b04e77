"""Does the flip + time-reversal ensemble pay? `python scripts/interp_ensemble.py --model flowinterp_wide`.

Scores an interpolator with and without `FlowInterp.ensemble` (the pair also run mirrored and in
reverse time, averaged) on the held-out training clip (train.interpolate's `val_video_psnr`: 24 fixed
256² crops of `05_juggle`, gaps 2 and 4), the data the choice is made on; `--sets UCF101` adds
benchmark sets (evaluate.interpolate's loader) for reporting only. RGB PSNR, mean over triplets.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.paths import data_root  # noqa: E402
from evaluate.interpolate import load_triplets  # noqa: E402
from models import load_model  # noqa: E402
from train.interp_data import load_clips, video_validation  # noqa: E402
from train.interpolate import validate  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="flowinterp_wide")
    p.add_argument("--weights", type=Path, default=None)
    p.add_argument("--val-clip", default="05_juggle")
    p.add_argument("--video-cache", type=Path, default=Path("runs/video_cache"))
    p.add_argument("--sets", default="", help="comma list of evaluate.interpolate sets, e.g. UCF101")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.model, args.weights).eval()
    sets = {"held-out clip": video_validation(load_clips(data_root() / "video", args.video_cache)[args.val_clip])}
    for name in filter(None, args.sets.split(",")):
        sets[name] = [(f0, ft, f1, t) for f0, ft, f1, t in load_triplets(name)]
    print(f"| set | {args.model} | + ensemble | gain |\n|---|---|---|---|")
    for name, triplets in sets.items():
        scores = []
        for ensemble in (False, True):
            model.ensemble = ensemble
            scores.append(validate(model, triplets, "cpu"))
        print(f"| {name} ({len(triplets)}) | {scores[0]:.3f} | {scores[1]:.3f} | {scores[1] - scores[0]:+.3f} |")
    return 0 if np.isfinite(scores).all() else 1


if __name__ == "__main__":
    sys.exit(main())
