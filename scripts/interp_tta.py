"""Test-time ensembles of an interpolation model, measured on a triplet set (a diagnostic).

    python scripts/interp_tta.py --model convlstm_interp --set UCF101 --limit 120

Prints mean RGB PSNR of the plain output, of its mean with the time-reversed pass (frames swapped,
1 - t), and of the mean of those two and their left-right mirrored passes (RIFE's ensemble, which
flowinterp_wide builds into its graph). Why: the ConvLSTM reads its two frames in order, so its
reversed pass errs differently and might average out more than a symmetric model's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.metrics import psnr_rgb  # noqa: E402
from evaluate.interpolate import load_triplets  # noqa: E402
from models import load_model  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="convlstm_interp")
    p.add_argument("--set", default="UCF101")
    p.add_argument("--limit", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = load_model(args.model).eval()

    def tensor(a):
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None].float()

    scores = {"plain": [], "+reverse": [], "+reverse+mirror": []}
    with torch.no_grad():
        for f0, ft, f1, t in load_triplets(args.set, args.limit):
            a, b, tt = tensor(f0), tensor(f1), torch.full((1, 1, 1, 1), t)
            plain, reverse = model(a, b, tt), model(b, a, 1 - tt)
            mirrored = (model(a.flip(-1), b.flip(-1), tt) + model(b.flip(-1), a.flip(-1), 1 - tt)).flip(-1)
            for key, out in (("plain", plain), ("+reverse", (plain + reverse) / 2),
                             ("+reverse+mirror", (plain + reverse + mirrored) / 4)):
                scores[key].append(psnr_rgb(out.clamp(0, 1)[0].numpy().transpose(1, 2, 0), ft))
    print(f"{args.model} on {args.set} ({len(scores['plain'])} triplets): "
          + ", ".join(f"{k} {np.mean(v):.3f} dB" for k, v in scores.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
