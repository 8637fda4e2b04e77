"""Uncertainty map timing: K MC-dropout passes over examples/hr_frame_crop.png (256x256) per backend/precision/chunk.

    python scripts/bench_uncertainty.py [--passes 40] [--rounds 3] [--threads 2] onnx-cpu:fp32:8 openvino:int8:0 ...

CHUNK is the passes per backend call; 0 is the default's choice (serve.uncertainty.auto_chunk).

Configs run interleaved (one run of each per round, median over rounds), so load from other processes
hits them alike. Prints one JSON row per config: median seconds, speed-up over the first config, the mean
std of the map and its correlation with the first config's map (how faithful the faster map is).
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from serve.uncertainty import estimate_uncertainty

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hr_frame_crop.png"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", nargs="*", default=["onnx-cpu:fp32:0", "openvino:bf16:0", "openvino:int8:0"],
                   help="BACKEND:PRECISION:CHUNK (the first is the reference)")
    p.add_argument("--model", default="flashsr_x2")
    p.add_argument("--passes", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    img = np.asarray(Image.open(EXAMPLE).convert("RGB"), np.float32) / 255.0
    configs = [(b, prec, int(c)) for b, prec, c in (s.split(":") for s in args.configs)]

    def run(backend, precision, chunk):
        return estimate_uncertainty(img, args.model, passes=args.passes, backend=backend, precision=precision,
                                    chunk=chunk, threads=args.threads)

    results = {c: run(*c) for c in configs}  # warm-up (and compile) once each
    times = {c: [] for c in configs}
    for _ in range(args.rounds):
        for c in configs:
            started = time.perf_counter()
            run(*c)
            times[c].append(time.perf_counter() - started)
    ref = configs[0]
    for c in configs:
        median = statistics.median(times[c])
        corr = float(np.corrcoef(results[c].std_map.ravel(), results[ref].std_map.ravel())[0, 1])
        print(json.dumps({"backend": c[0], "precision": c[1], "chunk": c[2], "passes": args.passes,
                          "median_s": round(median, 3), "speedup": round(statistics.median(times[ref]) / median, 2),
                          "mean_std": results[c].summary["mean_std"], "std_map_corr": round(corr, 4)}), flush=True)


if __name__ == "__main__":
    main()
