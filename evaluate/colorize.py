"""Colorization benchmark: RGB PSNR / SSIM against the original colour, and colourfulness.

Protocol: each colour benchmark image is made grey (L/100 of CIE Lab, the models' input), colorized
at full resolution (reflect-padded to the model's multiple, cropped back), and compared with the
original colour: PSNR and SSIM over RGB (8-bit quantised, scikit-image SSIM with the usual Gaussian
settings) and Hasler & Suesstrunk colourfulness of the output (`colorfulness`) and of the truth
(`colorfulness_gt`). `--model grey` is the baseline: output = the grey input itself (a = b = 0).
Images that are already grey (two in Set14) have no colour to recover and are skipped (counted).

Hint models (spec.hint_inputs) run in automatic mode (zero hints), and with `--hints 0,1,5,10,20`
also with that many hints drawn from the truth (models.hints.truth_hints: uniform positions, the
patch's mean colour, seed = the image's index in its set, so the curve is reproducible); those rows
are named "MODEL +N hints". `seconds` is the models' own time (hint encoding excluded). Models with
the vividness control (spec.vividness_input) run at its default 1; `--vividness 1.5,2` adds automatic
rows at those values, named "MODEL vividness V" (the accuracy / colourfulness trade-off a user picks).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from common.images import hwc_to_nchw, nchw_to_hwc
from common.metrics import colorfulness, psnr_rgb, quantize, ssim
from models import get_spec
from models.hints import encode_hints, truth_hints
from models.io import DEFAULT_VIVIDNESS, MAX_VIVIDNESS, VIVIDNESS
from models.lab_color import grey_from_rgb, grey_to_rgb

from .common import by_model_and_set, markdown_table, mean, model_runner, read_set, select_models

BASELINE = "grey"
DEFAULT_SETS = "BSD68,Set14,Kodak24"
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


def hint_arrays(rgb: np.ndarray, count: int, seed: int) -> tuple:
    """(hint_ab HxWx2, hint_mask HxWx1) with `count` truth hints, as model_runner takes images."""
    hint_ab, mask = encode_hints(truth_hints(rgb, count, seed), *rgb.shape[:2])
    return hint_ab[0].transpose(1, 2, 0), mask[0].transpose(1, 2, 0)


def evaluate_colorize(model_name: str, sets: Dict[str, tuple], weights: Optional[Path] = None,
                      device: str = "cpu", hints: int = 0, vividness: float = DEFAULT_VIVIDNESS) -> List[dict]:
    spec = None if model_name == BASELINE else get_spec(model_name)
    uses_hints = spec is not None and spec.hint_inputs
    scalars = {VIVIDNESS: vividness} if spec is not None and spec.vividness_input else {}
    label = model_name + (f" +{hints} hints" if hints else "") + (
        f" vividness {vividness:g}" if vividness != DEFAULT_VIVIDNESS else "")
    colorize = (lambda grey: nchw_to_hwc(grey_to_rgb(hwc_to_nchw(grey)))) if model_name == BASELINE else \
        model_runner(model_name, weights, device)
    rows = []
    for set_name, (images, skipped) in sets.items():
        psnrs, ssims, colour, colour_gt, seconds = [], [], [], [], 0.0
        for index, (_, rgb) in enumerate(images):
            grey = nchw_to_hwc(grey_from_rgb(hwc_to_nchw(rgb)))
            feeds = hint_arrays(rgb, hints, index) if uses_hints else ()
            start = time.perf_counter()
            out = colorize(grey, *feeds, **scalars)
            seconds += time.perf_counter() - start
            psnrs.append(psnr_rgb(out, rgb))
            ssims.append(ssim(quantize(out), quantize(rgb)))
            colour.append(colorfulness(out))
            colour_gt.append(colorfulness(rgb))
        rows.append({"model": label, "set": set_name, "hints": hints, "vividness": scalars.get(VIVIDNESS),
                     "psnr": mean(psnrs, 4), "ssim": mean(ssims, 5),
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
    weights = args.weights if name != BASELINE else None
    rows = evaluate_colorize(name, sets, weights, args.device)
    if name != BASELINE and get_spec(name).hint_inputs:
        for count in hint_counts(args):
            rows += evaluate_colorize(name, sets, weights, args.device, hints=count)
    if name != BASELINE and get_spec(name).vividness_input:
        for value in vividness_values(args):
            rows += evaluate_colorize(name, sets, weights, args.device, vividness=value)
    return rows


def _comma_list(args, flag: str, cast, what: str, low: float, high: float) -> list:
    """The sorted distinct values of a comma-list option such as --hints "0,1,5" (SystemExit when bad)."""
    text = getattr(args, flag, None) or ""
    try:
        values = sorted({cast(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise SystemExit(f"error: --{flag} must be a comma list of {what}, got {text!r}") from None
    if any(not low <= v <= high for v in values):
        raise SystemExit(f"error: --{flag} values must be in {low:g}..{high:g}")
    return values


def hint_counts(args) -> List[int]:
    """--hints "0,1,5,10,20": the hints curve's counts (0 is the automatic row, always there)."""
    return [c for c in _comma_list(args, "hints", int, "whole numbers", 0, 256) if c > 0]


def vividness_values(args) -> List[float]:
    """--vividness "1.5,2": the extra automatic rows' values (1, the default row, is always there)."""
    values = _comma_list(args, "vividness", float, "numbers", 0.0, MAX_VIVIDNESS)
    return [v for v in values if v != DEFAULT_VIVIDNESS]


def line(r: dict) -> str:
    return (f"{r['model']:<26} {r['set']:<8} RGB-PSNR {r['psnr']:.3f} dB  SSIM {r['ssim']:.4f}  "
            f"colourfulness {r['colorfulness']:.1f} (truth {r['colorfulness_gt']:.1f}; {r['images']} images)")


def table(rows: List[dict], sets: List[str], args=None) -> str:
    body = [[model, *(f"{per_set[s]['psnr']:.2f} / {per_set[s]['ssim']:.4f} / {per_set[s]['colorfulness']:.1f} "
                      f"({per_set[s]['colorfulness_gt']:.1f})" if s in per_set else "-" for s in sets)]
            for (model,), per_set in by_model_and_set(rows).items()]
    return markdown_table(["model", *(f"{s} PSNR / SSIM / colourfulness (GT)" for s in sets)], body)
