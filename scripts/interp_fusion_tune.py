"""Choose the DIS fusion of the interpolators (serve/interp_fusion.py: GAIN, SIGMA) on the held-out training clip.

    python scripts/interp_fusion_tune.py [--model flowinterp_wide] [--triplets 60]

Never on the benchmarks: triplets (i, i + gap, i + 2 gap), gap 1-4, random 256-px crops, from the clip the
interpolation trainers hold out (05_juggle, never trained on) at 1/2 and 1/4 resolution (decoded with PyAV
as train/interp_data.py does). Prints the RGB PSNR of the frame at t = 0.5 for the model alone, DIS alone,
and the fusion for each GAIN and SIGMA (SIGMA "inf" = a fixed mix with weight GAIN), and the best.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.metrics import psnr_rgb  # noqa: E402
from common.paths import data_root  # noqa: E402
from evaluate.common import model_runner  # noqa: E402
from models.io import TIMESTEP  # noqa: E402
from serve.interp_fusion import dis_only, fuse_frame, pair_flows  # noqa: E402
from train.interp_data import decode_clip  # noqa: E402

CLIP, SIZE = "05_juggle", 256


def held_out_triplets(count: int, seed: int = 1) -> list:
    rng = np.random.default_rng(seed)
    frames = decode_clip(data_root() / "video" / f"{CLIP}.mp4", Path("runs/video_cache"), scales=(2, 4))
    out = []
    for scale in (2, 4):
        data = frames[scale]
        for _ in range(count):
            gap = int(rng.integers(1, 5))
            i = int(rng.integers(0, len(data) - 2 * gap))
            h, w = data.shape[1:3]
            side = min(SIZE, h)
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            out.append(tuple(np.asarray(data[i + k * gap, y:y + side, x:x + side], np.float32) / 255.0
                             for k in range(3)))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="flowinterp_wide")
    p.add_argument("--triplets", type=int, default=60, help="per resolution")
    p.add_argument("--gains", default="0.5,0.75,0.9,1.0")
    p.add_argument("--sigmas", default="0.05,0.1,0.2,0.4,inf")
    args = p.parse_args(argv)
    run = model_runner(args.model)
    gains = [float(g) for g in args.gains.split(",")]
    sigmas = [float(s) for s in args.sigmas.split(",")]
    scores = {key: [] for key in itertools.product(gains, sigmas)}
    alone, dis_alone = [], []
    triplets = held_out_triplets(args.triplets)
    for f0, truth, f1 in triplets:
        own = np.clip(run(f0, f1, **{TIMESTEP: 0.5}), 0.0, 1.0)
        flows = pair_flows(f0, f1)
        alone.append(psnr_rgb(own, truth))
        dis_alone.append(psnr_rgb(dis_only(f0, f1, 0.5, flows), truth))
        for gain, sigma in scores:
            scores[(gain, sigma)].append(psnr_rgb(fuse_frame(own, f0, f1, 0.5, flows, gain, sigma), truth))
    print(f"{len(triplets)} held-out triplets ({CLIP}, 1/2 and 1/4 resolution, gaps 1-4), t = 0.5, RGB PSNR")
    print(f"{args.model} alone {np.mean(alone):.3f} dB, DIS alone {np.mean(dis_alone):.3f} dB; fusion:")
    print("| gain | " + " | ".join(f"sigma {s:g}" for s in sigmas) + " |")
    print("|---" * (len(sigmas) + 1) + "|")
    for g in gains:
        print(f"| {g:g} | " + " | ".join(f"{np.mean(scores[(g, s)]):.3f}" for s in sigmas) + " |")
    best = max(scores, key=lambda k: np.mean(scores[k]))
    print(f"best: gain {best[0]:g}, sigma {best[1]:g}: {np.mean(scores[best]):.3f} dB "
          f"({np.mean(scores[best]) - np.mean(alone):+.3f} over the model alone)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
