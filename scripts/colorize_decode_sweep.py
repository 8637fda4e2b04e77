"""The colorizer's decoding knobs on the held-out training images (a diagnostic, README "Vividness").

    python scripts/colorize_decode_sweep.py [--model colorize_hint_cls] [--temperatures 0.2,0.38,0.6,1.0]
        [--gains 0.3,0.4,0.5,0.6,0.7,0.8,1.0,1.2] [--sides 128,192,256,512]

Part 1: annealed-mean temperature T x chroma gain, scored by train.colorize.validate on the 256-px
held-out crops the gain rule uses (RGB PSNR against grey's, colourfulness against the truth's). Part 2:
the working size, serve.colorize on ONNX Runtime at each long side for the full held-out images, at
vividness 1, against vividness 0 (grey). Why: to see whether a sharper decode or a smaller input buys
colour that the gain alone does not.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.metrics import colorfulness, psnr_rgb  # noqa: E402
from models import get_spec, load_model  # noqa: E402
from models.checkpoint import read_sidecar  # noqa: E402
from serve.colorize import colorize  # noqa: E402
from train.colorize import validate, validation_crops  # noqa: E402
from train.colorize_calibrate import held_out_images  # noqa: E402


def floats(text: str) -> list:
    return [float(v) for v in text.split(",") if v.strip()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="colorize_hint_cls")
    p.add_argument("--temperatures", default="0.2,0.38,0.6,1.0")
    p.add_argument("--gains", default="0.3,0.4,0.5,0.6,0.7,0.8,1.0,1.2")
    p.add_argument("--sides", default="128,192,256,512")
    args = p.parse_args(argv)
    spec = get_spec(args.model)
    images = held_out_images(read_sidecar(spec.weights_path))
    model = load_model(spec.name).eval()
    crops = validation_crops(images, spec.pad_multiple)
    print(f"{len(images)} held-out images; shipped T {getattr(model, 'temperature', None)}, gain {model.chroma_gain}")
    print("\n| T | gain | PSNR - grey (dB) | colourfulness / truth |\n|---|---|---|---|")
    with torch.no_grad():
        for temperature in floats(args.temperatures):
            model.temperature = temperature
            for gain in floats(args.gains):
                model.chroma_gain = gain
                r = validate(model, crops, "cpu")
                print(f"| {temperature:g} | {gain:g} | {r['val_psnr'] - r['val_grey_psnr']:+.2f} | "
                      f"{r['val_colorfulness'] / r['val_colorfulness_gt']:.2f}x |", flush=True)
    print("\n| long side | PSNR - grey (dB) | colourfulness / truth |\n|---|---|---|")
    for side in floats(args.sides):
        gains, colour = [], []
        for rgb in images:
            out = colorize(rgb, spec.name, "onnx", chroma_max_side=int(side)).image
            grey = colorize(rgb, spec.name, "onnx", chroma_max_side=int(side), vividness=0.0).image
            gains.append(psnr_rgb(out, rgb) - psnr_rgb(grey, rgb))
            colour.append((colorfulness(out), colorfulness(rgb)))
        ratio = np.mean([c for c, _ in colour]) / np.mean([t for _, t in colour])
        print(f"| {side:g} | {np.mean(gains):+.2f} | {ratio:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
