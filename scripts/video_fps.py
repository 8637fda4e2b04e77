"""Video throughput by precision: the 52-frame 854x480 CDFI sequence at x2 SR and at x2 frame rate.

    python scripts/video_fps.py [--frames 52] [--threads 2] [--rounds 1] [--json runs/video_fps.json]
        [--precisions "exact fp32,fast bf16,fastest int8,auto"]

The frames ($STSR_DATA/vfi/sequences/cdfi_854x480) are first written as a lossless-quality MP4, then
`serve.video.process_video` runs the whole job (decode, model, encode) for each (job, precision):
exact fp32 on ONNX Runtime (the default before the CPU-speed work), fast bf16 and fastest int8 on
OpenVINO, and `auto`. Jobs run interleaved per round, so load from other processes hits them alike;
fps = output frames / wall seconds (median over rounds). A precision a model lacks here (no bf16 on
the CPU, no int8 file) is reported as skipped with the reason.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.paths import data_root  # noqa: E402
from serve.contract import ServeError  # noqa: E402
from serve.video import make_test_clip, process_video  # noqa: E402

JOBS = {"x2 SR": {"sr_model": "flashsr_x2", "fps_factor": 1, "interp_model": None},
        "x2 fps": {"sr_model": None, "fps_factor": 2, "interp_model": "flowinterp"}}
PRECISIONS = [("exact fp32", "onnx", "fp32"), ("fast bf16", "openvino", "bf16"),
              ("fastest int8", "openvino", "int8"), ("auto", "auto", "auto")]
SR_ONLY = {"fastest int8"}  # int8 is built for SR models only (export/int8.py); interpolation would run fp32


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=52)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--precisions", default=",".join(label for label, _, _ in PRECISIONS),
                   help="which rows, comma-separated (auto equals one of the others; its row shows which)")
    args = p.parse_args()
    wanted = {label.strip() for label in args.precisions.split(",")}
    files = sorted((data_root() / "vfi" / "sequences" / "cdfi_854x480").glob("*.jpg"))[:args.frames]
    frames = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    scratch = Path(tempfile.mkdtemp(prefix="stsr-video-fps-"))
    clip = scratch / "cdfi_854x480.mp4"
    make_test_clip(clip, frames, fps=Fraction(25))
    warm = scratch / "warmup.mp4"
    make_test_clip(warm, frames[:2], fps=Fraction(25))
    seconds, rows = {}, []
    for rnd in range(-1, args.rounds):  # round -1: a 2-frame clip, so runtimes are loaded before timing
        source = warm if rnd < 0 else clip
        for job, settings in JOBS.items():
            for label, backend, precision in PRECISIONS:
                key = (job, label)
                if seconds.get(key) == "skipped" or (label in SR_ONLY and not settings["sr_model"]) \
                        or label not in wanted:
                    continue
                try:
                    started = time.perf_counter()
                    info = process_video(source, scratch / f"{job}-{precision}.mp4", backend=backend,
                                         precision=precision, threads=args.threads,
                                         sr_options={"threads": args.threads}, **settings)
                except ServeError as exc:
                    seconds[key], rows = "skipped", rows + [{"job": job, "precision": label, "skipped": str(exc)[:200]}]
                    continue
                if rnd >= 0:
                    seconds.setdefault(key, []).append(time.perf_counter() - started)
                    seconds[job, label, "info"] = info
    for job in JOBS:
        base = None
        for label, _, _ in PRECISIONS:
            runs = seconds.get((job, label))
            if not isinstance(runs, list):
                continue
            info = seconds[job, label, "info"]
            median = statistics.median(runs)
            fps = info["frames_out"] / median
            base = base or fps
            ran = info.get("backend") or {}
            backend = f"{ran.get('backend')} {ran.get('provider')}"
            backend += "" if str(ran.get("precision")) in backend else f" {ran.get('precision')}"
            rows.append({"job": job, "precision": label, "frames_out": info["frames_out"],
                         "size_out": "x".join(map(str, info["size"])), "seconds": round(median, 2),
                         "fps": round(fps, 2), "speedup": round(fps / base, 2), "backend": backend})
    print(f"{'job':<8} {'precision':<13} {'frames':>6} {'output':>10} {'seconds':>8} {'fps':>6} {'vs fp32':>7}  ran on")
    for r in rows:
        if "skipped" in r:
            print(f"{r['job']:<8} {r['precision']:<13} skipped: {r['skipped']}")
        else:
            print(f"{r['job']:<8} {r['precision']:<13} {r['frames_out']:>6} {r['size_out']:>10} {r['seconds']:>8.1f} "
                  f"{r['fps']:>6.2f} {r['speedup']:>6.2f}x  {r['backend']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"threads": args.threads, "rounds": args.rounds, "rows": rows}, indent=2,
                                        default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
