"""`python -m evaluate --task sr --model flashsr_x4 --sets Set5,Set14,BSD100 --json`.

--task sr           Y-PSNR / SSIM / GMSD / MS-SSIM / detail ratio (evaluate/sr.py); baseline `bicubic`
--task colorize     RGB PSNR / SSIM / colourfulness (evaluate/colorize.py); baseline `grey`
--task interpolate  RGB PSNR / SSIM at t = 0.5 (evaluate/interpolate.py); baseline `blend`
--task vsr          video SR: Y-PSNR / SSIM centre frame and all frames, temporal consistency, CPU ms per
                    frame (evaluate/vsr.py); rows bicubic, per-frame flashsr_x4 and the video models
--task uncertainty  how well the uncertainty map (serve.uncertainty; --estimator mc|tta, --passes K)
                    predicts the real error (evaluate/uncertainty.py)

`--model all` is every trained model of the task plus its baseline. Unreadable benchmark files are
reported on stderr by name and skipped, never a crash.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch

from . import colorize, interpolate, sr, uncertainty, vsr
from .common import print_json, run_jobs

TASKS = {"sr": sr, "colorize": colorize, "interpolate": interpolate, "uncertainty": uncertainty, "vsr": vsr}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=list(TASKS), default="sr")
    p.add_argument("--model", default=None, help="comma list of registered names, the task's baseline, or 'all' "
                   "(required except for --task vsr, whose default is all)")
    p.add_argument("--sets", default=None, help="benchmark folders under $STSR_DATA/benchmark (default: the "
                   f"task's: sr/colorize/uncertainty {sr.DEFAULT_SETS}, interpolate {interpolate.DEFAULT_SETS})")
    p.add_argument("--scale", type=int, default=None, help="scale for 'bicubic' (default: 2 and 4 with 'all')")
    p.add_argument("--weights", type=Path, default=None, help="evaluate this checkpoint instead of the shipped one")
    p.add_argument("--device", default="cpu")
    p.add_argument("--limit", type=int, default=0, help="first N images of each set (quick checks)")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table (for the README)")
    p.add_argument("--update-sidecar", action="store_true", help="store the results in the weights' JSON sidecar")
    p.add_argument("--bench-json", type=Path, default=None,
                   help="serve.bench's bench.json: adds its ORT CPU latency at 256x256 to the Markdown table")
    real = p.add_argument_group("--task sr / vsr: real-world degradations (common.degradations)")
    real.add_argument("--degradation", choices=sr.DEGRADATIONS, default="clean",
                      help="LR of each HR: clean = bicubic (the standard protocol), real-* = the fixed presets "
                           "(blur + bicubic + noise + JPEG; image i of a set uses seed i; video: each frame its own)")
    real.add_argument("--strength", type=float, default=0.5,
                      help="denoise strength (0..1) for models that take one (flashsr_real_*)")
    real.add_argument("--precision", default=None,
                      help="run SR through serve.upscale on --backend at fp32, bf16, int8 or auto (default: the "
                           "PyTorch module directly); rows record backend and precision, sidecars are not updated")
    col = p.add_argument_group("--task colorize")
    col.add_argument("--hints", default="", help="hint models: also score with this many truth hints, e.g. "
                     "0,1,5,10,20 (fixed seeds; evaluate/colorize.py)")
    col.add_argument("--vividness", default="", help="models with the control: also score at these vividness "
                     "values, e.g. 1.5,2,2.5 (the automatic rows; 1 is the default row)")
    unc = p.add_argument_group("--task uncertainty")
    unc.add_argument("--estimator", choices=["mc", "tta"], default="mc", help="MC dropout or flip/rotation TTA")
    unc.add_argument("--passes", type=int, default=40, help="stochastic passes K (TTA uses at most 8)")
    unc.add_argument("--chunk", type=int, default=0,
                     help="passes per backend call (0: as many as fit in serve.uncertainty.MC_CALL_BYTES)")
    unc.add_argument("--backend", default="auto", help="serve backend kind (auto, onnx-cpu, torch-cpu, ...)")
    unc.add_argument("--seed", type=int, default=0, help="seed of the dropout masks")
    args = p.parse_args(argv)
    if args.model is None and args.task != "vsr":
        p.error("the following arguments are required: --model")
    if args.model is not None and not args.model.strip(" ,"):
        p.error("--model is empty: give one or more registered names, the task's baseline, or 'all'")
    if args.limit < 0:
        p.error(f"--limit must be 0 (every image) or a positive count, not {args.limit}")
    if args.scale is not None and args.scale not in (2, 4):
        p.error(f"--scale must be 2 or 4, not {args.scale}")
    from serve.precision import parse_precision
    from serve.runtime import ALIASES, KINDS

    if args.backend not in KINDS + ALIASES:
        p.error(f"--backend {args.backend!r} is not one of {', '.join(KINDS + ALIASES)}")
    if args.precision is not None:
        try:
            parse_precision(args.precision)
        except ValueError as exc:
            p.error(f"--precision: {exc}")
    if args.seed < 0:
        p.error(f"--seed must be 0 or more, not {args.seed}")
    if args.bench_json is not None and not args.bench_json.is_file():  # checked before the evaluation, not after
        p.error(f"--bench-json {args.bench_json}: no such file (serve.bench writes bench.json)")
    if args.device != "cpu" and not (args.device.startswith("cuda") and torch.cuda.is_available()):
        p.error(f"--device {args.device!r} is not available here (use cpu" + (
            ", or cuda" if torch.cuda.is_available() else "; this torch has no CUDA GPU") + ")")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    task = TASKS[args.task]
    set_names = [s.strip() for s in (args.sets or task.DEFAULT_SETS).split(",") if s.strip()]
    jobs = task.plan(args)
    sets = {name: task.load_one_set(name, args.limit) for name in set_names}
    with torch.no_grad():  # a context, not set_grad_enabled: main() also runs inside other programs (tests)
        rows = run_jobs(jobs, lambda job: task.evaluate_job(job, sets, args), args,
                        baselines=getattr(task, "BASELINES", (getattr(task, "BASELINE", ""),)),
                        metrics=task.METRICS, line=task.line,
                        always_log=task is uncertainty)
    if args.json:
        print_json(rows)
    if args.markdown and task.table is not None:
        print(task.table(rows, set_names, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
