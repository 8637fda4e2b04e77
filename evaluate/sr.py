"""Super-resolution benchmark: Y-PSNR/SSIM, GMSD, MS-SSIM and detail ratio per (model, scale, set).

Protocol (../shared/data/README.md): HR mod-cropped to the scale, LR by PIL bicubic (antialiased)
downscaling (make_sr_pair, the one place evaluation makes LR), metrics on the BT.601 Y channel after
cropping `scale` pixels from each border. `--model bicubic` is the baseline (PIL bicubic upscaling;
`--scale` picks its scale).

`--degradation real-light|real-medium|real-heavy` makes the LR with common.degradations'
fixed presets instead (image i of a set with seed i, so every run sees the same LR); rows are then
labelled SET:PRESET (e.g. BSD100:real-medium) so sidecar metrics never mix with the clean ones.
Strength models (flashsr_real_*) run at `--strength` (default 0.5).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from common.degradations import PRESETS, degrade_preset
from common.metrics import detail_ratio_y, gmsd_y, ms_ssim_y, psnr_y, ssim_y
from common.resize import bicubic_downscale, bicubic_upscale, mod_crop
from models import REGISTRY, get_spec

from .common import by_model_and_set, load_set, markdown_table, mean, model_runner, select_models

BASELINE = "bicubic"
DEFAULT_SETS = "Set5,Set14,BSD100"
METRICS = ("psnr_y", "ssim_y", "gmsd_y", "ms_ssim_y", "detail_ratio_y")
DEGRADATIONS = ("clean", *PRESETS)


def make_sr_pair(hr: np.ndarray, scale: int, degradation: str = "clean",
                 seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(HR mod-cropped to the scale, its LR): how every SR evaluation (and calibration) degrades HR.
    clean: PIL bicubic; a real-* preset: common.degradations.degrade_preset with `seed`."""
    hr = mod_crop(hr, scale)
    return hr, bicubic_downscale(hr, scale) if degradation == "clean" else degrade_preset(hr, scale, degradation, seed)


def set_label(set_name: str, degradation: str) -> str:
    return set_name if degradation == "clean" else f"{set_name}:{degradation}"


load_one_set = load_set  # (set name, --limit) -> what evaluate_job takes per set


def plan(args) -> List[Tuple[str, int]]:
    """(model, scale) pairs to evaluate; the baseline runs at --scale or every registered SR scale."""
    jobs = []
    for name in select_models(args.model, "sr", BASELINE):
        if name == BASELINE:
            scales = [args.scale] if args.scale else sorted({s.scale for s in REGISTRY.values() if s.task == "sr"})
            jobs += [(BASELINE, s) for s in scales]
            continue
        spec = get_spec(name)
        if args.scale and args.scale != spec.scale:
            raise SystemExit(f"error: '{name}' is x{spec.scale}; --scale {args.scale} does not apply")
        jobs.append((name, spec.scale))
    return jobs


def serving_runner(model_name: str, weights, backend: str, precision: str):
    """f(lr, strength=None) through serve.upscale (whole image): to measure a backend and precision."""
    from serve.sr import upscale

    extra = {"weights_path": str(weights)} if weights else {}
    return lambda lr, strength=None: upscale(lr, model_name, backend, tile=0, precision=precision,
                                             strength=strength, **extra).image


def evaluate_sr(model_name: str, scale: int, sets: Dict[str, list], weights=None, device="cpu",
                degradation: str = "clean", strength: float = 0.5, serving=None) -> List[dict]:
    """`serving` = (backend, precision): run through serve.upscale instead of the PyTorch module."""
    if model_name == BASELINE:
        upscale = lambda lr: bicubic_upscale(lr, scale)  # noqa: E731
    elif serving:
        runner = serving_runner(model_name, weights, *serving)
        takes = get_spec(model_name).strength_input
        upscale = lambda lr: runner(lr, strength if takes else None)  # noqa: E731
    else:
        runner = model_runner(model_name, weights, device)
        takes = get_spec(model_name).strength_input
        upscale = (lambda lr: runner(lr, strength=strength)) if takes else runner  # noqa: E731
    rows = []
    for set_name, images in sets.items():
        scores: Dict[str, list] = {k: [] for k in METRICS}
        seconds = 0.0
        for index, (_, hr) in enumerate(images):
            hr, lr = make_sr_pair(hr, scale, degradation, seed=index)
            start = time.perf_counter()
            sr = upscale(lr)
            seconds += time.perf_counter() - start
            for key, metric in zip(METRICS, (psnr_y, ssim_y, gmsd_y, ms_ssim_y, detail_ratio_y)):
                scores[key].append(metric(sr, hr, crop=scale))
        valid_ms = [v for v in scores["ms_ssim_y"] if not np.isnan(v)]
        extra = {} if degradation == "clean" else {"degradation": degradation}
        if takes_strength(model_name):
            extra["strength"] = strength
        if serving and model_name != BASELINE:
            extra.update(backend=serving[0], precision=serving[1])
        rows.append({"model": model_name, "set": set_label(set_name, degradation), "scale": scale, **extra,
                     "psnr_y": mean(scores["psnr_y"], 4),
                     "ssim_y": mean(scores["ssim_y"], 5), "gmsd_y": mean(scores["gmsd_y"], 5),
                     "ms_ssim_y": mean(valid_ms, 5) if valid_ms else None,
                     "detail_ratio_y": mean(scores["detail_ratio_y"], 4),
                     "seconds": round(seconds, 3), "images": len(images)})
    return rows


def ort_latency(bench_json: Path) -> Dict[str, float]:
    """model -> median ms of ONNX Runtime on CPU at a 256x256 input, from serve.bench's bench.json."""
    rows = json.loads(Path(bench_json).read_text())["results"]
    return {r["model"]: r["median_ms"] for r in rows if r.get("backend", "").startswith("onnx") and
            r.get("device") == "cpu" and r.get("input_wh") == [256, 256] and r.get("median_ms") is not None}


def sr_table(rows: List[dict], sets: List[str], latency: Dict[str, float] = None) -> str:
    """Params, Y-PSNR / SSIM per set, GMSD / MS-SSIM / detail ratio on the last set, and (given) ORT CPU latency."""
    last = sets[-1]
    head = ["model", "scale", "params", *(f"{s} PSNR / SSIM" for s in sets), f"{last} GMSD ↓ / MS-SSIM",
            f"{last} detail", "ORT CPU 256² (ms)"]
    body = []
    keyed = by_model_and_set(rows, ("model", "scale"))
    for (model, scale), per_set in sorted(keyed.items(), key=lambda kv: (kv[0][1], kv[0][0] != BASELINE, kv[0][0])):
        params = f"{sum(p.numel() for p in REGISTRY[model].build().parameters()):,}" if model in REGISTRY else "-"
        cells = [f"{per_set[s]['psnr_y']:.2f} / {per_set[s]['ssim_y']:.4f}" if s in per_set else "-" for s in sets]
        r = per_set.get(last)
        structure = f"{r['gmsd_y']:.4f} / {r['ms_ssim_y']:.4f}" if r and r.get("ms_ssim_y") is not None else "-"
        detail = f"{r['detail_ratio_y']:.3f}" if r and r.get("detail_ratio_y") is not None else "-"
        ms = (latency or {}).get(model)
        body.append([model, f"x{scale}", params, *cells, structure, detail, f"{ms:.0f}" if ms is not None else "-"])
    return markdown_table(head, body)


def line(r: dict) -> str:
    return (f"{r['model']:<20} x{r['scale']} {r['set']:<8} Y-PSNR {r['psnr_y']:.3f} dB  SSIM {r['ssim_y']:.4f}  "
            f"GMSD {r['gmsd_y']:.4f}  detail {r['detail_ratio_y']:.3f}  ({r['images']} images, {r['seconds']:.2f} s)")



def takes_strength(model_name: str) -> bool:
    return model_name != BASELINE and get_spec(model_name).strength_input


def evaluate_job(job, sets, args) -> List[dict]:
    name, scale = job
    degradation, strength = getattr(args, "degradation", "clean"), getattr(args, "strength", 0.5)
    if not 0.0 <= strength <= 1.0:
        raise SystemExit(f"error: --strength must be in [0, 1], got {strength}")
    serving = (args.backend, args.precision) if getattr(args, "precision", None) else None
    return evaluate_sr(name, scale, sets, args.weights, args.device, degradation, strength, serving)


def table(rows, set_names, args) -> str:
    labels = [set_label(s, getattr(args, "degradation", "clean")) for s in set_names]
    return sr_table(rows, labels, ort_latency(args.bench_json) if args.bench_json else None)
