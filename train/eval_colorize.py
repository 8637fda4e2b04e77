"""Colorization benchmark: `python -m train.evaluate --task colorize --model colorize_lab,grey --sets BSD68,Set14`.

Protocol: each colour benchmark image is made grey (L/100 of CIE Lab, the models' input), colorized
at full resolution (reflect-padded to the model's multiple, cropped back), and compared with the
original colour: PSNR and SSIM over RGB (8-bit quantised, scikit-image SSIM with the usual Gaussian
settings) and Hasler & Suesstrunk colourfulness of the output (`colorfulness`) and of the truth
(`colorfulness_gt`). `--model grey` is the baseline: output = the grey input itself (a = b = 0).
Images that are already grey (two in Set14) have no colour to recover and are skipped (counted).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from common.images import ImageLoadError, list_images, read_image
from common.metrics import colorfulness, psnr_rgb, quantize, ssim
from common.paths import benchmark_dir
from models import REGISTRY, get_spec, load_model
from models.checkpoint import CheckpointError, record_metrics
from models.lab_color import grey_from_rgb, grey_to_rgb

BASELINE = "grey"


def load_colour_set(name: str, limit: int = 0):
    """(file name, RGB array) of the set's colour images, and how many grey ones were skipped."""
    folder = benchmark_dir(name)
    if not folder.is_dir():
        raise SystemExit(f"error: benchmark set '{name}' not found at {folder} (set STSR_DATA)")
    images, grey = [], 0
    for path in list_images(folder)[: limit or None]:
        try:
            decoded = read_image(path)
        except ImageLoadError as exc:
            print(f"warning: skipping {exc}", file=sys.stderr)
            continue
        if decoded.was_grey or colorfulness(decoded.rgb) < 1.0:
            grey += 1
            continue
        images.append((path.name, decoded.rgb))
    if not images:
        raise SystemExit(f"error: no readable colour images in {folder}")
    return images, grey


def make_colorizer(model_name: str, weights: Optional[Path] = None, device: str = "cpu") -> Callable:
    """f(grey 1x1xHxW tensor) -> RGB 1x3xHxW tensor in [0,1], for a registered model or the grey baseline."""
    if model_name == BASELINE:
        return grey_to_rgb
    try:
        model = load_model(model_name, weights).to(device)
    except CheckpointError as exc:
        raise SystemExit(f"error: {exc}")
    multiple = get_spec(model_name).pad_multiple

    def run(grey: torch.Tensor) -> torch.Tensor:
        h, w = grey.shape[-2:]
        padded = F.pad(grey, (0, (-w) % multiple, 0, (-h) % multiple), mode="reflect")
        return model(padded.to(device)).clamp(0, 1)[..., :h, :w].cpu()

    return run


@torch.inference_mode()
def evaluate_colorize(model_name: str, sets: Dict[str, tuple], weights: Optional[Path] = None,
                      device: str = "cpu") -> List[dict]:
    colorize = make_colorizer(model_name, weights, device)
    rows = []
    for set_name, (images, skipped) in sets.items():
        psnrs, ssims, colour, colour_gt, seconds = [], [], [], [], 0.0
        for _, rgb in images:
            grey = grey_from_rgb(torch.from_numpy(rgb.transpose(2, 0, 1)).unsqueeze(0))
            start = time.perf_counter()
            out = colorize(grey)[0].numpy().transpose(1, 2, 0)
            seconds += time.perf_counter() - start
            psnrs.append(psnr_rgb(out, rgb))
            ssims.append(ssim(quantize(out), quantize(rgb)))
            colour.append(colorfulness(out))
            colour_gt.append(colorfulness(rgb))
        rows.append({"model": model_name, "set": set_name, "psnr": round(float(np.mean(psnrs)), 4),
                     "ssim": round(float(np.mean(ssims)), 5), "colorfulness": round(float(np.mean(colour)), 3),
                     "colorfulness_gt": round(float(np.mean(colour_gt)), 3), "images": len(images),
                     "skipped_grey": skipped, "seconds": round(seconds, 3)})
    return rows


def plan(model_arg: str) -> List[str]:
    names = [n.strip() for n in model_arg.split(",") if n.strip()]
    if names == ["all"]:
        return [BASELINE] + [s.name for s in REGISTRY.values() if s.task == "colorize" and s.has_weights()]
    for name in names:
        if name == BASELINE:
            continue
        try:
            spec = get_spec(name)
        except KeyError as exc:
            raise SystemExit(f"error: {exc.args[0]}")
        if spec.task != "colorize":
            raise SystemExit(f"error: '{name}' is a {spec.task} model, not colorize")
    return names


def markdown_table(rows: List[dict], sets: List[str]) -> str:
    keyed: Dict[str, Dict[str, dict]] = {}
    for r in rows:
        keyed.setdefault(r["model"], {})[r["set"]] = r
    head = "| model | " + " | ".join(f"{s} PSNR / SSIM / colourfulness (GT)" for s in sets) + " |"
    lines = [head, "|" + "---|" * (1 + len(sets))]
    for model, per_set in keyed.items():
        cells = [f"{per_set[s]['psnr']:.2f} / {per_set[s]['ssim']:.4f} / {per_set[s]['colorfulness']:.1f} "
                 f"({per_set[s]['colorfulness_gt']:.1f})" if s in per_set else "-" for s in sets]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main_colorize(args, set_names: List[str]) -> int:
    """The `--task colorize` branch of train.evaluate (args: its parsed namespace)."""
    names = plan(args.model)
    if args.weights and len([n for n in names if n != BASELINE]) != 1:
        raise SystemExit("error: --weights needs exactly one model")
    sets = {name: load_colour_set(name, args.limit) for name in set_names}
    rows = []
    for name in names:
        result = evaluate_colorize(name, sets, args.weights if name != BASELINE else None, args.device)
        rows += result
        if args.update_sidecar and name != BASELINE:
            path = args.weights or get_spec(name).weights_path
            record_metrics(path, result, ("psnr", "ssim", "colorfulness", "colorfulness_gt"))
        if not args.json:
            for r in result:
                print(f"{r['model']:<14} {r['set']:<8} RGB-PSNR {r['psnr']:.3f} dB  SSIM {r['ssim']:.4f}  "
                      f"colourfulness {r['colorfulness']:.1f} (truth {r['colorfulness_gt']:.1f}; {r['images']} images)",
                      file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    if args.markdown:
        print(markdown_table(rows, set_names))
    return 0
