"""`python -m export {onnx,trt,triton}`: deployable artifacts from the registered checkpoints.

  onnx    weights/onnx/NAME.onnx (+ NAME_mc.onnx), checked against PyTorch on ONNX Runtime. `--all` (re)builds
          every shipped model's missing or stale export (these are committed); `--check` only says which are
          stale, exit 1 if any (torch not needed)
  trt     a TensorRT engine for this GPU, cached under weights/trt by GPU/TRT/ONNX/precision/profile
  triton  a Triton model repository (ONNX Runtime and TensorRT backends)
  int8    weights/onnx/NAME.int8.onnx (static QDQ, calibrated on training crops) + its measured PSNR change

Bad input ends with one `error: ...` line and exit status 1; a missing TensorRT with 2.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from models import REGISTRY

from .artifacts import ExportError, read_json
from .onnx_files import MIN_OPSET, REGENERATE, current_reason, read_onnx_record, shipped_problems, shipped_variants

# torch-based modules are imported by the commands that need them: `onnx --check` runs without torch

WEIGHTS_HELP = "checkpoint to export instead of weights/NAME.safetensors"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("onnx", parents=[shared], help="export ONNX and check parity with PyTorch")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--model", help="registered model name, e.g. flashsr_x2")
    target.add_argument("--all", action="store_true", help="every registered model that has weights "
                                                           "(plus the MC variant where the model has dropout); "
                                                           "current exports are kept unless --force")
    target.add_argument("--check", action="store_true", help="export nothing: exit 1 naming every shipped "
                                                             "export that is missing or stale")
    p.add_argument("--force", action="store_true", help="with --all: re-export current ones too")
    p.add_argument("--weights", type=Path, help=WEIGHTS_HELP)
    p.add_argument("--out-dir", type=Path, help="default: weights/onnx")
    p.add_argument("--opset", type=int, default=MIN_OPSET)
    p.add_argument("--mc", action="store_true", help="also export NAME_mc.onnx (dropout masks as an input)")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch check")

    p = sub.add_parser("trt", parents=[shared], help="build (or reuse) a TensorRT engine for this GPU")
    _add_source_args(p)
    precision = p.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true")
    precision.add_argument("--bf16", action="store_true")
    p.add_argument("--min", default="16x16", help="smallest input HxW (default 16x16)")
    p.add_argument("--opt", default="256x256", help="HxW to tune for (default 256x256)")
    p.add_argument("--max", default="1088x1920", help="largest input HxW (default 1088x1920)")
    p.add_argument("--batch", default="1,1,4", help="MIN,OPT,MAX batch, or MC samples (default 1,1,4)")
    p.add_argument("--workspace-gb", type=float, default=4.0)
    p.add_argument("--cache-dir", type=Path, help="default: weights/trt")
    p.add_argument("--force", action="store_true", help="rebuild even when a matching engine is cached")
    p.add_argument("--no-check", action="store_true", help="skip the engine vs ONNX Runtime check")

    p = sub.add_parser("triton", parents=[shared], help="write a Triton model repository")
    _add_source_args(p)
    p.add_argument("--repo", type=Path, help="default: weights/triton")
    p.add_argument("--engine", type=Path, help="TensorRT engine to ship as NAME_trt/1/model.plan")
    p.add_argument("--max-batch-size", type=int, default=8)

    p = sub.add_parser("int8", parents=[shared], help="static int8 (QDQ) ONNX with its measured PSNR change")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--model", help="registered model name, e.g. flashsr_x4")
    target.add_argument("--all", action="store_true", help="every SR model that has weights (and its MC variant)")
    p.add_argument("--mc", action="store_true", help="also the Monte-Carlo dropout variant (NAME_mc.int8.onnx)")
    p.add_argument("--seed", type=int, default=0, help="picks the calibration images and crops")
    p.add_argument("--max-loss", type=float, default=None, help="refuse above this Y-PSNR loss in dB (default 0.1)")
    return parser


def _add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="registered model name, e.g. flashsr_x2")
    p.add_argument("--weights", type=Path, help=WEIGHTS_HELP)
    p.add_argument("--onnx", type=Path, help="use this exported ONNX instead of weights/onnx/NAME.onnx")
    p.add_argument("--mc", action="store_true", help="the Monte-Carlo dropout variant (NAME_mc)")


def _onnx_jobs(args) -> List[Tuple[str, bool]]:
    if not args.all:
        return [(args.model, False)] + [(args.model, True)] * args.mc
    if args.weights:
        raise ExportError("--weights names one checkpoint; it cannot go with --all")
    jobs = []
    for spec in REGISTRY.values():
        if not spec.has_weights():
            print(f"skip {spec.name}: no weights at {spec.weights_path}")
            continue
        jobs += [(spec.name, False)] + [(spec.name, True)] * (spec.mc_dropout or args.mc)
    if not jobs:
        raise ExportError("no registered model has weights yet (train one with train/ first)")
    return jobs


def check_shipped() -> None:
    """`onnx --check`: every shipped export current, or ExportError naming the stale ones."""
    problems = shipped_problems()
    if problems:
        raise ExportError(f"{len(problems)} shipped ONNX export(s) missing or stale (run `{REGENERATE}`): "
                          + "; ".join(problems))
    print(f"all {len(shipped_variants())} shipped ONNX exports are current")


def cmd_onnx(args) -> None:
    if args.check:
        return check_shipped()
    from .onnx_export import export_onnx, variant_name
    from .parity import format_table

    rows, effects = [], []
    for name, mc in _onnx_jobs(args):
        if args.all and not args.force:
            out, reason = current_reason(name, REGISTRY[name].weights_path, args.out_dir, mc=mc)
            if reason is None:
                print(f"current {out}")
                continue
        path = export_onnx(name, args.weights, args.out_dir, args.opset, check=not args.no_check, mc=mc)
        print(f"wrote {path}")
        record = read_onnx_record(path) or {}
        if record.get("parity"):
            rows.append((name, variant_name(mc), record["parity"]["max_abs_error"], record["parity"]["atol"]))
        if "mask_effect" in record:
            effects.append(f"{name}_mc: two mask sets move the output by up to {record['mask_effect']:.3g}")
    if rows:
        print(format_table(rows))
    for line in effects:
        print(line)


def cmd_trt(args) -> None:
    from serve.trt_runtime import import_tensorrt

    from .tensorrt_build import Profile, build_engine, engine_sidecar, parse_batch, parse_hw

    import_tensorrt()  # first, so a machine without TensorRT learns it before any export work
    profile = Profile(parse_batch(args.batch), parse_hw(args.min, "--min"), parse_hw(args.opt, "--opt"),
                      parse_hw(args.max, "--max"))
    precision = "fp16" if args.fp16 else "bf16" if args.bf16 else "fp32"
    path = build_engine(args.model, weights_path=args.weights, onnx_file=args.onnx, mc=args.mc,
                        precision=precision, profile=profile, workspace_gb=args.workspace_gb,
                        cache_dir=args.cache_dir, force=args.force, check=not args.no_check)
    record = read_json(engine_sidecar(path)) or {}
    print(f"engine {path}")
    error = (record.get("parity") or {}).get("opt_relative_error")
    if error is not None:
        print(f"{precision} engine vs ONNX Runtime at {args.opt}: relative max error {error:.3e} "
              f"(tolerance {record['parity']['tolerance']:g})")


def cmd_triton(args) -> None:
    from .triton import write_triton_repo

    for path in write_triton_repo(args.model, args.repo, weights_path=args.weights, onnx_file=args.onnx,
                                  engine_file=args.engine, mc=args.mc, max_batch_size=args.max_batch_size):
        print(f"wrote {path}")


def cmd_int8(args) -> None:
    from .int8 import MAX_LOSS_DB, quantize_model

    if args.seed < 0:
        raise ExportError(f"--seed must be 0 or more, not {args.seed}")
    if args.max_loss is not None and not 0 <= args.max_loss < 10:  # NaN fails this too (it refused nothing)
        raise ExportError(f"--max-loss must be a loss in dB from 0 to 10, not {args.max_loss}")
    if args.model and args.model in REGISTRY and REGISTRY[args.model].task != "sr":
        raise ExportError(f"int8 is built for SR models only; {args.model} is a {REGISTRY[args.model].task} model "
                          "(it runs in fp32 on every backend)")

    if args.all:
        jobs = []
        for spec in REGISTRY.values():
            if spec.task != "sr" or not spec.has_weights():
                print(f"skip {spec.name}: " + ("no weights" if spec.task == "sr" else
                                               f"int8 is built for SR models only (this is {spec.task})"))
                continue
            jobs += [(spec.name, False)] + [(spec.name, True)] * (spec.mc_dropout or args.mc)
    else:
        jobs = [(args.model, False)] + [(args.model, True)] * args.mc
    print(f"{'model':<22} {'fp32 Y-PSNR':>11} {'int8 ORT':>9} {'int8 OV':>8} {'bf16 OV':>8}  result")
    for name, mc in jobs:
        record = quantize_model(name, mc=mc, seed=args.seed, max_loss_db=args.max_loss or MAX_LOSS_DB)
        change = record.get("psnr_change_db") or {}
        cells = [f"{change[k]:+.3f}" if k in change else "-" for k in ("onnxruntime", "openvino")]
        bf16 = record.get("bf16_change_db")
        result = f"refused: {record['reason']}" if record.get("refused") else f"wrote {record['onnx']}"
        print(f"{name + ('_mc' if mc else ''):<22} {record.get('psnr_fp32_db', float('nan')):>11.3f} {cells[0]:>9} "
              f"{cells[1]:>8} {f'{bf16:+.3f}' if bf16 is not None else '-':>8}  {result}")


COMMANDS = {"onnx": cmd_onnx, "trt": cmd_trt, "triton": cmd_triton, "int8": cmd_int8}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from serve.trt_runtime import TensorRTMissing
    except ImportError:  # no torch, so no TensorRT runtime that could raise it
        TensorRTMissing = ()  # noqa: N806 - an empty except clause
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s")
    try:
        COMMANDS[args.command](args)
    except TensorRTMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ExportError, OSError) as exc:  # bad input or an unwritable folder: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:  # every command but `onnx --check` builds from the torch model
        print(f"error: `python -m export {args.command}` needs PyTorch ({exc}); pip install -r "
              "requirements-torch.txt (`python -m export onnx --check` runs without it)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
