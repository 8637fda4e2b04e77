"""Inference time of two colorizers through serve.colorize on the same photo (median of N runs).

    python scripts/colorize_timing.py [--models colorize_lab,colorize_hint_cls] [--backend torch] [--runs 5]

The photo is Kodak24's first image (500x500, so the model runs at 512x512 after padding); the timed span
is info["seconds"] (the model call, chroma at <= 512 px). Both models are warmed up first, then run
alternately (one run each per round), so a shared machine's load falls on both alike.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    from common.images import read_image
    from common.paths import data_root
    from serve.colorize import colorize

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="colorize_lab,colorize_hint_cls")
    p.add_argument("--backend", default="torch")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--hints", type=int, default=0, help="truth hints per run (hint models)")
    args = p.parse_args(argv)
    from models import get_spec
    from models.hints import truth_hints

    photo = read_image(sorted((data_root() / "benchmark" / "Kodak24").glob("*.png"))[0])
    hints = [(x, y, [c * 255 for c in colour]) for x, y, colour in truth_hints(photo.rgb, args.hints)]
    names = args.models.split(",")
    kws = {name: ({"hints": hints} if get_spec(name).hint_inputs else {}) for name in names}
    for name in names:  # warm-up: sessions built, first-run allocations done
        colorize(photo, name, args.backend, **kws[name])
    samples = {name: [] for name in names}
    for _ in range(args.runs):  # alternating, so load on a shared machine hits both models alike
        for name in names:
            samples[name].append(colorize(photo, name, args.backend, **kws[name]).info["seconds"])
    times = {name: statistics.median(samples[name]) for name in names}
    for name in names:
        print(f"{name:<20} {args.backend:<8} {times[name] * 1000:.1f} ms (median of {args.runs})")
    names = list(times)
    if len(names) == 2:
        print(f"ratio {names[1]} / {names[0]}: {times[names[1]] / times[names[0]]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
