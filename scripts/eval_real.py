"""Real-world SR table: `python scripts/eval_real.py --models bicubic,flashsr_x4,flashsr_real_x4 --sets BSD100`.

A sweep beside `python -m evaluate --task sr --degradation real-...` (one strength, shipped weights):
several strengths, several degradations and unpublished checkpoints (--weights NAME=PATH) in one run.
The same protocol (mod-crop, Y-PSNR / SSIM / GMSD / detail ratio after cropping `scale` border
pixels) with the LR made by common.degradations.degrade_preset (image i of a set uses seed i, so
every run sees the same LR) or, for 'clean', PIL bicubic. Strength models run at each --strength
value; other models ignore it. `--sets val` uses the training images train.sr holds out for
validation (pick strengths there, report on the benchmarks).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.degradations import PRESETS, degrade_preset  # noqa: E402
from common.metrics import detail_ratio_y, gmsd_y, psnr_y, ssim_y  # noqa: E402
from common.paths import data_root  # noqa: E402
from common.resize import bicubic_downscale, bicubic_upscale, mod_crop  # noqa: E402
from models import get_spec, load_model  # noqa: E402


def load_images(set_name: str, limit: int) -> List[np.ndarray]:
    from train.data import load_folder, split_validation

    if set_name == "val":  # train.sr's held-out validation images (default --val-count 10)
        images, names = load_folder(data_root() / "train")
        return split_validation(images, names, 10)[2][: limit or None]
    images, _ = load_folder(data_root() / "benchmark" / set_name)
    return images[: limit or None]


def make_lr(hr: np.ndarray, scale: int, degradation: str, seed: int) -> np.ndarray:
    return bicubic_downscale(hr, scale) if degradation == "clean" else degrade_preset(hr, scale, degradation, seed)


def upscaler(name: str, scale: int, weights: Dict[str, str]):
    """f(lr, strength) -> sr, for a registered model or 'bicubic'."""
    if name == "bicubic":
        return lambda lr, s: bicubic_upscale(lr, scale)
    model = load_model(name, weights.get(name))
    takes_strength = get_spec(name).strength_input

    @torch.inference_mode()
    def run(lr: np.ndarray, strength: float) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))).unsqueeze(0)
        kw = {"strength": torch.full((1, 1), strength)} if takes_strength else {}
        return model(x, **kw).clamp_(0, 1)[0].numpy().transpose(1, 2, 0)

    return run


def evaluate(args) -> List[dict]:
    weights = dict(w.split("=", 1) for w in args.weights) if args.weights else {}
    strengths = [float(s) for s in args.strength.split(",")]
    rows = []
    for set_name in args.sets.split(","):
        images = load_images(set_name, args.limit)
        for name in args.models.split(","):
            scale = args.scale if name == "bicubic" else get_spec(name).scale
            run = upscaler(name, scale, weights)
            takes = name != "bicubic" and get_spec(name).strength_input
            for degradation in args.degradations.split(","):
                for strength in strengths if takes else [None]:
                    scores = {"psnr_y": [], "ssim_y": [], "gmsd_y": [], "detail_ratio_y": []}
                    for i, img in enumerate(images):
                        hr = mod_crop(img, scale)
                        sr = run(make_lr(hr, scale, degradation, seed=i), strength)
                        for key, fn in (("psnr_y", psnr_y), ("ssim_y", ssim_y), ("gmsd_y", gmsd_y),
                                        ("detail_ratio_y", detail_ratio_y)):
                            scores[key].append(fn(sr, hr, crop=scale))
                    row = {"set": set_name, "model": name, "scale": scale, "degradation": degradation,
                           "strength": strength, "images": len(images),
                           **{k: round(float(np.mean(v)), 4) for k, v in scores.items()}}
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def markdown(rows: List[dict]) -> str:
    lines = ["| set | degradation | model | strength | Y-PSNR | SSIM | GMSD | detail ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = "-" if r["strength"] is None else f"{r['strength']:g}"
        lines.append(f"| {r['set']} | {r['degradation']} | {r['model']} | {s} | {r['psnr_y']:.2f} | "
                     f"{r['ssim_y']:.4f} | {r['gmsd_y']:.4f} | {r['detail_ratio_y']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="bicubic,flashsr_x4,flashsr_real_x4")
    p.add_argument("--scale", type=int, default=4, help="scale of 'bicubic'")
    p.add_argument("--sets", default="BSD100", help="comma list of benchmark sets, or 'val'")
    p.add_argument("--degradations", default="clean," + ",".join(PRESETS))
    p.add_argument("--strength", default="0.5", help="comma list: strength models are run at each")
    p.add_argument("--weights", nargs="*", default=None, help="NAME=PATH checkpoints instead of the shipped ones")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="also write the rows to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = evaluate(args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
