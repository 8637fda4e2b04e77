"""CPU time per output frame: the video SR step graph against per-frame flashsr on the serving backends.

    python scripts/vsr_speed.py [--sizes 64x112,120x212] [--kinds onnx-cpu,openvino-cpu] [--threads 1]

Each (model, backend) is created through serve.runtime (the graphs the app serves), the runs of all of
them are interleaved round by round, and the fastest run is reported: the CPU here is shared, and other
load only ever adds time. The video model's figure includes everything one frame costs (flow, warps,
fusion, the FlashSR trunk).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models import get_spec  # noqa: E402
from serve.runtime import get_backend  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="flashsr_x4,vsr_x4")
    p.add_argument("--kinds", default="onnx-cpu,openvino-cpu")
    p.add_argument("--sizes", default="64x112,120x212", help="LR HxW")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=10)
    args = p.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    runs = {}
    for name in args.models.split(","):
        for kind in args.kinds.split(","):
            try:
                runs[(name, kind)] = get_backend(name, kind, threads=args.threads)
            except Exception as exc:  # a runtime missing here: say so, measure the rest
                print(f"skip {name} on {kind}: {exc}", file=sys.stderr)
    print(f"| model | backend | {' | '.join(f'LR {h}x{w} ms' for h, w in sizes)} |")
    print("|---|---|" + "---|" * len(sizes))
    best = {}
    for h, w in sizes:
        feeds = {key: get_spec(key[0]).io.random_inputs(1, h, w) for key in runs}
        for key, backend in runs.items():
            backend.run(feeds[key])  # warm-up
        times = {key: [] for key in runs}
        for _ in range(args.rounds):
            for key, backend in runs.items():
                start = time.perf_counter()
                backend.run(feeds[key])
                times[key].append(time.perf_counter() - start)
        for key in runs:
            best.setdefault(key, []).append(1000 * float(np.min(times[key])))
    for (name, kind), ms in best.items():
        print(f"| {name} | {kind} | {' | '.join(f'{v:.1f}' for v in ms)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
