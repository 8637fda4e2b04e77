"""Benchmark evaluation: `python -m train.evaluate --task sr --model flashsr_x4 --sets Set5,Set14,BSD100 --json`.

`--task interpolate --model flowinterp,convlstm_interp,blend --sets BSD68,UCF101`: see
train/eval_interpolate.py.

`--task colorize --model colorize_lab,grey --sets BSD68,Set14`: see train/eval_colorize.py.

`--task uncertainty --model flashsr_x2 --sets BSD68,Set14` measures how well the uncertainty map
(serve.uncertainty; --estimator mc|tta, --passes K) predicts the real error: see train/calibration.py.

Protocol (../shared/data/README.md): HR mod-cropped to the scale, LR by PIL bicubic (antialiased)
downscaling, PSNR/SSIM on the BT.601 Y channel after cropping `scale` pixels from each border.
`--model bicubic` is the baseline (PIL bicubic upscaling; `--scale` picks its scale).
Unreadable benchmark files are reported on stderr by name and skipped, never a crash.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from common.images import ImageLoadError, list_images, read_image
from common.metrics import detail_ratio_y, gmsd_y, ms_ssim_y, psnr_y, ssim_y
from common.paths import benchmark_dir
from common.resize import bicubic_downscale, bicubic_upscale, mod_crop
from models import REGISTRY, get_spec, load_model
from models.checkpoint import CheckpointError, record_metrics

BASELINES = ("bicubic",)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=["sr", "uncertainty", "colorize", "interpolate"], default="sr")
    p.add_argument("--model", required=True, help="comma list of registered names, 'bicubic', or 'all'")
    p.add_argument("--sets", default="Set5,Set14,BSD100", help="benchmark folders under $STSR_DATA/benchmark")
    p.add_argument("--scale", type=int, default=None, help="scale for 'bicubic' (default: 2 and 4 with 'all')")
    p.add_argument("--weights", type=Path, default=None, help="evaluate this checkpoint instead of the shipped one")
    p.add_argument("--device", default="cpu")
    p.add_argument("--limit", type=int, default=0, help="first N images of each set (quick checks)")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table (for the README)")
    p.add_argument("--update-sidecar", action="store_true", help="store the results in the weights' JSON sidecar")
    p.add_argument("--precision", default=None, help="SR: run through serve.upscale on --backend at fp32, bf16, "
                   "int8 or auto (default: the PyTorch model directly)")
    p.add_argument("--bench-json", type=Path, default=None,
                   help="serve.bench's bench.json: adds its ORT CPU latency at 256x256 to the Markdown table")
    unc = p.add_argument_group("--task uncertainty")
    unc.add_argument("--estimator", choices=["mc", "tta"], default="mc", help="MC dropout or flip/rotation TTA")
    unc.add_argument("--passes", type=int, default=40, help="stochastic passes K (TTA uses at most 8)")
    unc.add_argument("--chunk", type=int, default=8, help="passes per backend call")
    unc.add_argument("--backend", default="auto", help="serve backend kind (auto, onnx-cpu, torch-cpu, ...)")
    unc.add_argument("--seed", type=int, default=0, help="seed of the dropout masks")
    return p.parse_args(argv)


def load_set(name: str, limit: int = 0) -> List[tuple]:
    folder = benchmark_dir(name)
    if not folder.is_dir():
        raise SystemExit(f"error: benchmark set '{name}' not found at {folder} (set STSR_DATA)")
    images = []
    for path in list_images(folder)[: limit or None]:
        try:
            images.append((path.name, read_image(path).rgb))
        except ImageLoadError as exc:
            print(f"warning: skipping {exc}", file=sys.stderr)
    if not images:
        raise SystemExit(f"error: no readable images in {folder}")
    return images


def make_upscaler(model_name: str, scale: int, weights: Path, device: torch.device, serve_options=None):
    """Returns f(lr HxWx3 float) -> sr HxWx3 float, for a registered model or the bicubic baseline.

    serve_options ({"backend", "precision"}): run through serve.upscale instead (whole image, one pass).
    """
    if model_name == "bicubic":
        return lambda lr: bicubic_upscale(lr, scale)
    if serve_options:
        from serve.sr import upscale

        extra = {"weights_path": str(weights)} if weights else {}
        return lambda lr: upscale(lr, model_name, serve_options["backend"], tile=0,
                                  precision=serve_options["precision"], **extra).image
    try:
        model = load_model(model_name, weights).to(device)
    except CheckpointError as exc:
        raise SystemExit(f"error: {exc}")

    @torch.inference_mode()
    def run(lr: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))).unsqueeze(0).to(device)
        return model(x).clamp_(0, 1)[0].cpu().numpy().transpose(1, 2, 0)

    return run


def evaluate_sr(model_name: str, scale: int, sets: Dict[str, list], weights=None, device="cpu",
                serve_options=None) -> List[dict]:
    upscale = make_upscaler(model_name, scale, weights, torch.device(device), serve_options)
    rows = []
    for set_name, images in sets.items():
        psnrs, ssims, gmsds, ms_ssims, details, seconds = [], [], [], [], [], 0.0
        for _, hr in images:
            hr = mod_crop(hr, scale)
            lr = bicubic_downscale(hr, scale)
            start = time.perf_counter()
            sr = upscale(lr)
            seconds += time.perf_counter() - start
            psnrs.append(psnr_y(sr, hr, crop=scale))
            ssims.append(ssim_y(sr, hr, crop=scale))
            gmsds.append(gmsd_y(sr, hr, crop=scale))
            ms_ssims.append(ms_ssim_y(sr, hr, crop=scale))
            details.append(detail_ratio_y(sr, hr, crop=scale))
        valid_ms = [v for v in ms_ssims if not np.isnan(v)]
        rows.append({"model": model_name, "set": set_name, "scale": scale, "psnr_y": round(float(np.mean(psnrs)), 4),
                     "ssim_y": round(float(np.mean(ssims)), 5), "gmsd_y": round(float(np.mean(gmsds)), 5),
                     "ms_ssim_y": round(float(np.mean(valid_ms)), 5) if valid_ms else None,
                     "detail_ratio_y": round(float(np.mean(details)), 4),
                     "seconds": round(seconds, 3), "images": len(images), **(serve_options or {})})
    return rows


def plan(args) -> List[tuple]:
    """(model, scale) pairs to evaluate."""
    names = [n.strip() for n in args.model.split(",") if n.strip()]
    if names == ["all"]:
        untrained = [s.name for s in REGISTRY.values() if s.task == "sr" and not s.has_weights()]
        if untrained:
            print(f"warning: no weights yet, skipped: {', '.join(untrained)}", file=sys.stderr)
        names = [s.name for s in REGISTRY.values() if s.task == "sr" and s.has_weights()] + ["bicubic"]
    jobs = []
    for name in names:
        if name == "bicubic":
            scales = [args.scale] if args.scale else sorted({s.scale for s in REGISTRY.values() if s.task == "sr"})
            jobs += [("bicubic", s) for s in scales]
            continue
        try:
            spec = get_spec(name)
        except KeyError as exc:
            raise SystemExit(f"error: {exc.args[0]}")
        if spec.task != "sr":
            raise SystemExit(f"error: '{name}' is a {spec.task} model, not sr")
        if args.scale and args.scale != spec.scale:
            raise SystemExit(f"error: '{name}' is x{spec.scale}; --scale {args.scale} does not apply")
        jobs.append((name, spec.scale))
    return jobs


def ort_latency(bench_json: Path) -> Dict[str, float]:
    """model -> median ms of ONNX Runtime on CPU at a 256x256 input, from serve.bench's bench.json."""
    rows = json.loads(Path(bench_json).read_text())["results"]
    return {r["model"]: r["median_ms"] for r in rows if r.get("backend", "").startswith("onnx") and
            r.get("precision", "fp32") == "fp32" and
            r.get("device") == "cpu" and r.get("input_wh") == [256, 256] and r.get("median_ms") is not None}


def markdown_table(rows: List[dict], sets: List[str], latency: Dict[str, float] = None) -> str:
    """Params, Y-PSNR / SSIM per set, GMSD / MS-SSIM / detail ratio on the last set, and (given) ORT CPU latency."""
    from models.registry import REGISTRY as specs

    keyed = {}
    for r in rows:
        keyed.setdefault((r["model"], r["scale"]), {})[r["set"]] = r
    last = sets[-1]
    head = ("| model | scale | params | " + " | ".join(f"{s} PSNR / SSIM" for s in sets)
            + f" | {last} GMSD ↓ / MS-SSIM | {last} detail | ORT CPU 256² (ms) |")
    lines = [head, "|" + "---|" * (6 + len(sets))]
    for (model, scale), per_set in sorted(keyed.items(), key=lambda kv: (kv[0][1], kv[0][0] != "bicubic", kv[0][0])):
        params = f"{sum(p.numel() for p in specs[model].build().parameters()):,}" if model in specs else "-"
        cells = [f"{per_set[s]['psnr_y']:.2f} / {per_set[s]['ssim_y']:.4f}" if s in per_set else "-" for s in sets]
        r = per_set.get(last)
        structure = f"{r['gmsd_y']:.4f} / {r['ms_ssim_y']:.4f}" if r and r.get("ms_ssim_y") is not None else "-"
        detail = f"{r['detail_ratio_y']:.3f}" if r and r.get("detail_ratio_y") is not None else "-"
        ms = (latency or {}).get(model)
        lines.append(f"| {model} | x{scale} | {params} | " + " | ".join(cells) + f" | {structure} | {detail} | "
                     + (f"{ms:.0f}" if ms is not None else "-") + " |")
    return "\n".join(lines)


def main_uncertainty(args, set_names: List[str]) -> int:
    """--task uncertainty: one calibration row per (model, set)."""
    from serve.contract import ServeError
    from train.calibration import evaluate_uncertainty, format_row

    jobs = [(name, scale) for name, scale in plan(args) if name != "bicubic"]
    if not jobs:
        raise SystemExit("error: --task uncertainty needs a registered model (bicubic has no uncertainty)")
    sets = {name: load_set(name, args.limit) for name in set_names}
    rows = []
    for model_name, _ in jobs:
        try:
            result = evaluate_uncertainty(model_name, sets, args.passes, args.estimator, args.backend, args.chunk,
                                          args.seed, args.weights, log=None if args.json else sys.stderr)
        except (ServeError, CheckpointError) as exc:
            raise SystemExit(f"error: {exc}")
        rows += result
        for r in result:
            print(format_row(r), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    set_names = [s.strip() for s in args.sets.split(",") if s.strip()]
    if args.task == "uncertainty":
        return main_uncertainty(args, set_names)
    if args.task == "interpolate":  # frame interpolation: see train/eval_interpolate.py
        from train.eval_interpolate import main_interpolate

        return main_interpolate(args, set_names)
    if args.task == "colorize":  # grey -> colour: RGB PSNR/SSIM and colourfulness, see train/eval_colorize.py
        from train.eval_colorize import main_colorize

        return main_colorize(args, set_names)
    jobs = plan(args)
    sets = {name: load_set(name, args.limit) for name in set_names}
    torch.set_grad_enabled(False)
    rows = []
    for model_name, scale in jobs:
        serve_options = {"backend": args.backend, "precision": args.precision} if args.precision else None
        result = evaluate_sr(model_name, scale, sets, args.weights, args.device, serve_options)
        rows += result
        if args.update_sidecar and model_name != "bicubic" and not serve_options:
            path = args.weights or get_spec(model_name).weights_path
            record_metrics(path, result, ("psnr_y", "ssim_y", "gmsd_y", "ms_ssim_y", "detail_ratio_y"))
        if not args.json:
            for r in result:
                print(f"{r['model']:<20} x{r['scale']} {r['set']:<8} Y-PSNR {r['psnr_y']:.3f} dB  "
                      f"SSIM {r['ssim_y']:.4f}  GMSD {r['gmsd_y']:.4f}  detail {r['detail_ratio_y']:.3f}  "
                      f"({r['images']} images, {r['seconds']:.2f} s)", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    if args.markdown:
        print(markdown_table(rows, set_names, ort_latency(args.bench_json) if args.bench_json else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
