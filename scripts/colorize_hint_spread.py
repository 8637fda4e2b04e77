"""How the weight-free hint paths of colorize_hint_cls do on the held-out training images (never benchmarks).

    python scripts/colorize_hint_spread.py [--model colorize_hint_cls] [--variants 0:0.25,17:0.25:0,9:0.25:3]
        [--weights runs/NAME/model.safetensors]

Each variant is HINT_BINS:HINTED_SHARE[:TEXTURE_BINS[:FALLBACK[:SPAN_LO:SPAN_HI]]] (models/colorize_hint.py;
bins 0 = the first version's luminance-blind pull-push; texture bins 0 = lightness only; omitted
fields are the model's defaults). Images: the 24 `val_images` of the weights' sidecar (held out of training),
centre crops of at most 512 px (a multiple of 32); hints: models.hints.truth_hints with seed = image
index, as evaluate --task colorize. Prints mean RGB PSNR per hint count and over the counts.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def held_out_crops(sidecar: dict, data: Path, side: int = 512) -> list:
    from common.images import read_image

    crops = []
    for name in sidecar["data"]["val_images"]:
        rgb = read_image(data / (name if name.startswith("train/") else f"colorize/{name}")).rgb
        h, w = (min(s, side) // 32 * 32 for s in rgb.shape[:2])
        top, left = (rgb.shape[0] - h) // 2, (rgb.shape[1] - w) // 2
        crops.append(np.ascontiguousarray(rgb[top:top + h, left:left + w]))
    return crops


def main(argv=None) -> int:
    from common.metrics import psnr_rgb
    from common.paths import data_root
    from models.hints import encode_hints, truth_hints
    from models.lab_color import grey_from_rgb
    from models.registry import load_model

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="colorize_hint_cls")
    p.add_argument("--variants", default="0:0.25,17:0.25:0,9:0.25:3")
    p.add_argument("--hints", default="1,5,10,20")
    p.add_argument("--weights", type=Path, default=None, help="a checkpoint instead of the shipped weights "
                   "(its sidecar's chroma_gain; held-out images from the shipped sidecar)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = load_model(args.model, args.weights).eval()
    sidecar = json.loads(Path(f"weights/{args.model}.json").read_text())
    crops = held_out_crops(sidecar, data_root())
    counts = [int(c) for c in args.hints.split(",")]
    for variant in args.variants.split(","):
        fields = variant.split(":")
        defaults = [None, None, model.texture_bins, model.hint_fallback, *model.texture_span]
        bins, share, texture, fallback, low, high = fields + [str(d) for d in defaults[len(fields):]]
        model.hint_bins, model.hinted_share, model.texture_bins = int(bins), float(share), int(texture)
        model.hint_fallback, model.texture_span = float(fallback), (float(low), float(high))
        scores = {}
        for count in counts:
            psnrs = []
            for index, rgb in enumerate(crops):
                x = torch.from_numpy(rgb.transpose(2, 0, 1)).unsqueeze(0)
                feeds = (torch.from_numpy(f) for f in encode_hints(truth_hints(rgb, count, index), *rgb.shape[:2]))
                with torch.no_grad():
                    out = model(grey_from_rgb(x), *feeds).clamp(0, 1)[0].numpy().transpose(1, 2, 0)
                psnrs.append(psnr_rgb(out, rgb))
            scores[count] = float(np.mean(psnrs))
        text = "  ".join(f"{c} hints {v:.2f}" for c, v in scores.items())
        label = f"bins {bins:>2} share {share:>4} texture {texture} fallback {fallback} span {low},{high}"
        print(f"{label}: {text}  mean {np.mean(list(scores.values())):.2f} dB", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
