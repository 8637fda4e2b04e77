"""Colorization benchmark: RGB PSNR / SSIM against the original colour, and colourfulness.

Protocol: each colour benchmark image is made grey (L/100 of CIE Lab, the models' input), colorized
at full resolution (reflect-padded to the model's multiple, cropped back), and compared with the
original colour: PSNR and SSIM over RGB (8-bit quantised, scikit-image SSIM with the usual Gaussian
settings) and Hasler & Suesstrunk colourfulness of the output (`colorfulness`) and of the truth
(`colorfulness_gt`). `--model grey` is the baseline: output = the grey input itself (a = b = 0).
Images that are already grey (two in Set14) have no colour to recover and are skipped (counted).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Optional

from common.images import hwc_to_nchw, nchw_to_hwc
from common.metrics import colorfulness, psnr_rgb, quantize, ssim
from models.lab_color import grey_from_rgb, grey_to_rgb

from .common import by_model_and_set, markdown_table, mean, model_runner, read_set, select_models

BASELINE = "grey"
DEFAULT_SETS = "Set5,Set14,BSD100"
METRICS = ("psnr", "ssim", "colorfulness", "colorfulness_gt")


def load_colour_set(name: str, limit: int = 0):
    """(file name, RGB array) of the set's colour images, and how many grey ones were skipped."""
    images, grey = [], 0
    for file, decoded in read_set(name, limit):
        if decoded.was_grey or colorfulness(decoded.rgb) < 1.0:
            grey += 1
            continue
        images.append((file, decoded.rgb))
    if not images:
        raise SystemExit(f"error: no readable colour images in benchmark set '{name}'")
    return images, grey


def evaluate_colorize(model_name: str, sets: Dict[str, tuple], weights: Optional[Path] = None,
                      device: str = "cpu") -> List[dict]:
    colorize = (lambda grey: nchw_to_hwc(grey_to_rgb(hwc_to_nchw(grey)))) if model_name == BASELINE else \
        model_runner(model_name, weights, device)
    rows = []
    for set_name, (images, skipped) in sets.items():
        psnrs, ssims, colour, colour_gt, seconds = [], [], [], [], 0.0
        for _, rgb in images:
            grey = nchw_to_hwc(grey_from_rgb(hwc_to_nchw(rgb)))
            start = time.perf_counter()
            out = colorize(grey)
            seconds += time.perf_counter() - start
            psnrs.append(psnr_rgb(out, rgb))
            ssims.append(ssim(quantize(out), quantize(rgb)))
            colour.append(colorfulness(out))
            colour_gt.append(colorfulness(rgb))
        rows.append({"model": model_name, "set": set_name, "psnr": mean(psnrs, 4), "ssim": mean(ssims, 5),
                     "colorfulness": mean(colour, 3), "colorfulness_gt": mean(colour_gt, 3), "images": len(images),
                     "skipped_grey": skipped, "seconds": round(seconds, 3)})
    return rows


load_one_set = load_colour_set  # (set name, --limit) -> what evaluate_job takes per set


def plan(args) -> List[str]:
    names = select_models(args.model, "colorize", BASELINE, baseline_first=True)
    if args.weights and len([n for n in names if n != BASELINE]) != 1:
        raise SystemExit("error: --weights needs exactly one model")
    return names



def evaluate_job(name, sets, args) -> List[dict]:
    return evaluate_colorize(name, sets, args.weights if name != BASELINE else None, args.device)


def line(r: dict) -> str:
    return (f"{r['model']:<14} {r['set']:<8} RGB-PSNR {r['psnr']:.3f} dB  SSIM {r['ssim']:.4f}  "
            f"colourfulness {r['colorfulness']:.1f} (truth {r['colorfulness_gt']:.1f}; {r['images']} images)")


def table(rows: List[dict], sets: List[str], args=None) -> str:
    body = [[model, *(f"{per_set[s]['psnr']:.2f} / {per_set[s]['ssim']:.4f} / {per_set[s]['colorfulness']:.1f} "
                      f"({per_set[s]['colorfulness_gt']:.1f})" if s in per_set else "-" for s in sets)]
            for (model,), per_set in by_model_and_set(rows).items()]
    return markdown_table(["model", *(f"{s} PSNR / SSIM / colourfulness (GT)" for s in sets)], body)
