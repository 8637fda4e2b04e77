"""Space-time ordering: x2 frame rate together with x4 resolution, in two orders, on the same clips.

    python scripts/vsr_spacetime.py --sets Vimeo7,CDFI [--limit N] [--weights runs/vsr_x4/model.safetensors]

The even frames of each clip are the input (Vimeo7: im1, im3, im5, im7; CDFI: frames 0, 2, ..., 50); the odd
frames are the truth of the in-between ones.
  lr-first:  interpolate the LR frames (flowinterp at LR), then the video SR model upscales every frame
             (what serve.video_job does: it upscales the frames it emits, interpolated ones included);
  sr-first:  per-frame flashsr_x4 on the input frames, then flowinterp at HR (the naive order);
  lr-first, per-frame SR: the cheap order with flashsr_x4 instead of the video model (the order's own effect);
  sr-first, video SR: the video model on the input frames, then flowinterp at HR (serve.video_job's order).
Prints Y-PSNR (scale px border crop) of the in-between frames and of all frames, and the seconds per output
frame (PyTorch CPU, this process's threads), one row per (set, order).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.metrics import psnr_y  # noqa: E402
from common.resize import bicubic_downscale, mod_crop  # noqa: E402
from evaluate.common import model_runner  # noqa: E402
from evaluate.vsr import clip_upscaler, load_clips  # noqa: E402
from models.io import TIMESTEP  # noqa: E402


def run_orders(clip, interp, vsr, per_frame, scale: int) -> dict:
    """{order: (in-between PSNRs, all PSNRs, seconds)} for one clip; an odd-length clip keeps its last frame."""
    hr = [mod_crop(f, scale) for f in clip]
    keep = hr[0::2]
    lr = [bicubic_downscale(f, scale) for f in keep]
    n = 2 * len(keep) - 1
    out = {}
    start = time.perf_counter()
    lr_all = [lr[0]]
    for a, b in zip(lr, lr[1:]):
        lr_all += [interp(a, b, **{TIMESTEP: 0.5}), b]
    interp_s = time.perf_counter() - start
    lr_first = vsr(lr_all)
    out["lr-first"] = (lr_first, time.perf_counter() - start)
    start = time.perf_counter()
    out["lr-first, per-frame SR"] = (per_frame(lr_all), time.perf_counter() - start + interp_s)
    start = time.perf_counter()
    sr = per_frame(lr)
    sr_first = [sr[0]]
    for a, b in zip(sr, sr[1:]):
        sr_first += [interp(a, b, **{TIMESTEP: 0.5}), b]
    out["sr-first"] = (sr_first, time.perf_counter() - start)
    start = time.perf_counter()
    sr = vsr(lr)
    vsr_first = [sr[0]]
    for a, b in zip(sr, sr[1:]):
        vsr_first += [interp(a, b, **{TIMESTEP: 0.5}), b]
    out["sr-first, video SR"] = (vsr_first, time.perf_counter() - start)
    scores = {}
    for order, (frames, seconds) in out.items():
        psnrs = [psnr_y(f, h, crop=scale) for f, h in zip(frames, hr[:n])]
        scores[order] = (psnrs[1::2], psnrs, seconds / n)
    return scores


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", default="Vimeo7,CDFI")
    p.add_argument("--limit", type=int, default=0, help="first N clips of each set")
    p.add_argument("--vsr", default="vsr_x4")
    p.add_argument("--per-frame", default="flashsr_x4")
    p.add_argument("--interp", default="flowinterp")
    p.add_argument("--weights", type=Path, default=None, help="video SR checkpoint (default: shipped)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    scale = 4
    interp = model_runner(args.interp)
    vsr = clip_upscaler(args.vsr, scale, args.weights, "cpu")
    per_frame = clip_upscaler(args.per_frame, scale, None, "cpu")
    print("| set | order | in-between Y-PSNR | all frames Y-PSNR | s / output frame |")
    print("|---|---|---|---|---|")
    for set_name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        totals = {}
        for clip in load_clips(set_name, args.limit):
            for order, (mid, every, sec) in run_orders(clip, interp, vsr, per_frame, scale).items():
                acc = totals.setdefault(order, ([], [], []))
                acc[0].extend(mid)
                acc[1].extend(every)
                acc[2].append(sec)
        for order, (mid, every, sec) in totals.items():
            print(f"| {set_name} | {order} | {np.mean(mid):.2f} | {np.mean(every):.2f} | {np.mean(sec):.2f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
