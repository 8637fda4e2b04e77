"""Video colorization flicker: `python -m evaluate.colorize_video [--model M] [--frames 52]`.

The CDFI sequence ($STSR_DATA/vfi/sequences/cdfi_854x480, 52 real frames) is made grey and coloured
twice by serve.colorize_video: per frame, and with chroma carried along FlowInterp's flow. Flicker
is the mean |delta ab| (Lab units) between consecutive frames after warping the earlier one by that
flow, over pixels where the warp holds (serve.colorize_video.colorize_stream's info["flicker"]). The
clip is a single shot, so the only keyframe is frame 0. Also reports PSNR against the true colour frames.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def main(argv=None) -> int:
    from common.metrics import psnr_rgb
    from common.paths import data_root
    from serve.colorize import DEFAULT_MODEL
    from serve.colorize_video import FlowField, colorize_frames, read_clip

    p = argparse.ArgumentParser(prog="python -m evaluate.colorize_video", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--frames", type=int, default=52)
    p.add_argument("--backend", default="torch")
    args = p.parse_args(argv)
    frames, _ = read_clip(data_root() / "vfi" / "sequences" / "cdfi_854x480", limit=args.frames)
    flow = FlowField()
    rows = []
    for per_frame in (True, False):
        start = time.perf_counter()
        colour, info = colorize_frames(frames, model_name=args.model, backend=args.backend, per_frame=per_frame,
                                       flow=flow)
        info["psnr"] = round(float(np.mean([psnr_rgb(c, f) for c, f in zip(colour, frames)])), 3)
        info["seconds"] = round(time.perf_counter() - start, 1)
        rows.append(info)
        print(f"{info['mode']:<10} flicker {info['flicker']:.3f}  PSNR {info['psnr']:.2f} dB  "
              f"({info['frames']} frames, keyframes {info['keyframes']}, {info['seconds']} s)", file=sys.stderr)
    reduction = 1 - rows[1]["flicker"] / max(rows[0]["flicker"], 1e-9)
    print(json.dumps({"rows": rows, "flicker_reduction": round(reduction, 3)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
