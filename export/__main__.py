"""`python -m export {onnx,trt,triton}`: deployable artifacts from the registered checkpoints.

  onnx    weights/onnx/NAME.onnx (+ NAME_mc.onnx), checked against PyTorch on ONNX Runtime
  trt     a TensorRT engine for this GPU, cached under weights/trt by GPU/TRT/ONNX/precision/profile
  triton  a Triton model repository (ONNX Runtime and TensorRT backends)

Bad input ends with one `error: ...` line and exit status 1; a missing TensorRT with 2.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from models import REGISTRY
from serve.trt_runtime import TensorRTMissing, import_tensorrt

from .artifacts import ExportError, read_json
from .onnx_export import MIN_OPSET, export_onnx, read_onnx_record, variant_name
from .parity import format_table
from .tensorrt_build import Profile, build_engine, engine_sidecar, parse_batch, parse_hw
from .triton import write_triton_repo

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
                                                           "(plus the MC variant where the model has dropout)")
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


def cmd_onnx(args) -> None:
    rows, effects = [], []
    for name, mc in _onnx_jobs(args):
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
    for path in write_triton_repo(args.model, args.repo, weights_path=args.weights, onnx_file=args.onnx,
                                  engine_file=args.engine, mc=args.mc, max_batch_size=args.max_batch_size):
        print(f"wrote {path}")


COMMANDS = {"onnx": cmd_onnx, "trt": cmd_trt, "triton": cmd_triton}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s")
    try:
        COMMANDS[args.command](args)
    except TensorRTMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ExportError, OSError) as exc:  # bad input or an unwritable folder: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
