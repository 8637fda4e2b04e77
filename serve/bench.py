"""Latency benchmark of every backend on the same inputs.

    python -m serve.bench --models flashsr_x4 --backends torch,onnx,openvino,trt --sizes 256,512,1080p --runs 10
        [--precisions fp32,bf16,int8] [--input example|random|IMAGE] [--warmup 2] [--threads 2] [--json]
        [--out-dir runs/bench] [--weights PATH|random] [--tile 0] [--fp16]

Sizes are input sizes: '256' is 256x256, '1080p' 1920x1080 (W x H), or 'WxH'. Each (model, size) gets
one input shared by all backends and precisions: a real photo (examples/hr_frame_crop.png, resized and
cropped to the size) by default, or seeded noise with --input random. Next to the speed, every row has
the PSNR of its output against the first fp32 row's output on that input ("vs fp32"), and the Y-PSNR
change measured on held-out training images by `python -m export int8` ("held-out"), where recorded.
Warm-up runs are not timed; CUDA runs are timed with
synchronize + CUDA events. Peak memory is the growth of the process's peak RSS over the timed and
warm-up runs (reset through /proc/self/clear_refs; ru_maxrss where that is unavailable), or
torch.cuda.max_memory_allocated for torch on CUDA; memory a runtime keeps cached from an earlier
size (ORT's CPU arena) is not counted again. Backends that cannot run here are listed as
skipped with the reason. Writes bench.json and bench.png to --out-dir.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from common.cpu import cpu_flags
from models import get_spec, save_checkpoint

from .backends import Backend, module_available
from .contract import REQUEST_ERRORS, error_message
from .memory import PeakMemory
from .precision import RUNTIME_OF_KIND, parse_precision, read_record
from .runtime import RECOVERABLE_ERRORS, get_backend, onnx_path_for
from .tiling import call_pixel_budget, plan_for, tiled_apply

NAMED_SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "1440p": (2560, 1440), "2160p": (3840, 2160),
               "4k": (3840, 2160)}


MAX_BENCH_PIXELS = 7680 * 4320  # 8K: above every named size


def parse_size(text: str) -> Tuple[int, int]:
    """'256' -> (256, 256); '1080p' -> (1920, 1080); '640x480' -> (640, 480). Returns (W, H)."""
    text = text.strip().lower()
    if text in NAMED_SIZES:
        return NAMED_SIZES[text]
    try:
        if "x" in text:
            w, h = (int(v) for v in text.split("x"))
        else:
            w = h = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size '{text}': use N, WxH or one of {', '.join(NAMED_SIZES)}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"size '{text}' must be positive")
    if w * h > MAX_BENCH_PIXELS:  # a typo like 100000 would otherwise allocate and run for ever
        raise argparse.ArgumentTypeError(f"size '{text}' is {w * h / 1e6:.0f} MP; the benchmark takes at most "
                                         f"{MAX_BENCH_PIXELS / 1e6:.0f} MP (8K)")
    return w, h


def time_runs(call, runs: int, warmup: int, cuda: bool) -> List[float]:
    """Milliseconds of each timed call, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    if cuda:
        import torch

        for _ in range(runs):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            call()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        return times
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def _scalar_feed(tensor, count: int) -> np.ndarray:
    """Per sample, in the tensor's rank (a timestep is (N,1,1,1), a strength (N,1)): a control's default
    (models.registry.SCALAR_DEFAULTS: strength 0.5, vividness 1), else 0.5 (the middle timestep)."""
    from models.registry import SCALAR_DEFAULTS

    return np.full((count,) + (1,) * (tensor.rank - 1), SCALAR_DEFAULTS.get(tensor.name, 0.5), np.float32)


def feeds_for(backend: Backend, x: np.ndarray) -> Dict[str, np.ndarray]:
    """Inputs for every tensor of the model's contract, built from the one image `x`.

    Extra image inputs (interpolation's second frame) get `x` shifted by 4 px so there is motion;
    non-image inputs (a timestep, a denoise strength, a vividness) get _scalar_feed's value per sample.
    """
    feeds: Dict[str, np.ndarray] = {}
    for index, tensor in enumerate(backend.inputs):
        if tensor.channels is None:
            feeds[tensor.name] = _scalar_feed(tensor, x.shape[0])
        else:
            feeds[tensor.name] = x if index == 0 else np.ascontiguousarray(np.roll(x, 4, axis=3))
    return feeds


EXAMPLE_INPUT = Path(__file__).resolve().parent.parent / "examples" / "hr_frame_crop.png"


def bench_input(source: str, channels: int, w: int, h: int, seed: int) -> np.ndarray:
    """(1,C,h,w) float32: a real photo resized to cover w x h and centre-cropped, or seeded noise."""
    if source == "random":
        return np.random.default_rng([seed, w, h]).random((1, channels, h, w), np.float32)
    from PIL import Image

    path = EXAMPLE_INPUT if source == "example" else Path(source)
    if not path.is_file():
        raise ValueError(f"--input {source}: no such image file (use 'example', 'random' or a path to a photo)")
    with Image.open(path) as im:
        im = im.convert("RGB" if channels == 3 else "L")
        factor = max(w / im.width, h / im.height)
        im = im.resize((max(w, round(im.width * factor)), max(h, round(im.height * factor))), Image.BICUBIC)
        left, top = (im.width - w) // 2, (im.height - h) // 2
        arr = np.asarray(im.crop((left, top, left + w, top + h)), np.float32) / 255.0
    arr = arr[..., None] if arr.ndim == 2 else arr
    return np.ascontiguousarray(arr.transpose(2, 0, 1)[None])


def psnr_between(a: np.ndarray, b: np.ndarray) -> Optional[float]:
    """PSNR (dB, data range 1) of two outputs clipped to [0,1]; None when shapes differ; capped at 99
    (identical up to float rounding)."""
    if a.shape != b.shape:
        return None
    mse = float(np.mean((np.clip(a, 0, 1).astype(np.float64) - np.clip(b, 0, 1)) ** 2))
    return 99.0 if mse < 1e-10 else round(min(10.0 * np.log10(1.0 / mse), 99.0), 2)


def recorded_change(model: str, kind: str, precision: str, options: Dict[str, Any]) -> Optional[float]:
    """The held-out Y-PSNR change `python -m export int8` measured for (runtime, precision); 0 for fp32."""
    if precision == "fp32":
        return 0.0
    try:
        record, _ = read_record(onnx_path_for(model, options.get("weights_path")), precision)
    except RECOVERABLE_ERRORS:
        return None
    change = ((record or {}).get("psnr_change_db") or {}).get(RUNTIME_OF_KIND.get(kind, kind))
    return None if change is None else float(change)


def bench_one(backend: Backend, x: np.ndarray, scale: int, runs: int, warmup: int, tile: int) -> Dict[str, Any]:
    name_in, name_out = backend.inputs[0].name, backend.outputs[0].name
    controls = [t for t in backend.inputs[1:] if t.channels is None]  # per-image scalars (strength)

    def run_tiles(batch: np.ndarray) -> np.ndarray:
        return backend.run({name_in: batch, **{t.name: _scalar_feed(t, len(batch)) for t in controls}})[name_out]

    if len(backend.inputs) > 1 + len(controls):
        feeds = feeds_for(backend, x)
        call = lambda: backend.run(feeds)[name_out]  # noqa: E731  (two-image models are not tiled here)
    elif tile > 0:
        spec = backend.spec  # the tiles and batches serve.sr would run (the model's tile cap and call budget)
        plan = plan_for(backend.receptive_radius, tile=min(tile, spec.max_tile) if spec.max_tile else tile)
        call = lambda: tiled_apply(run_tiles, x, scale, plan, spec.pad_multiple,  # noqa: E731
                                   max_call_pixels=call_pixel_budget(spec))[0]
    else:
        call = lambda: run_tiles(x)  # noqa: E731
    cuda = backend.device == "cuda" and _torch_cuda()
    with PeakMemory(backend) as mem:
        times = time_runs(call, runs, warmup, cuda)
    median = statistics.median(times)
    out_pixels = x.shape[2] * x.shape[3] * scale * scale
    output = call()  # the timed path again (an untiled 720p pass here held ~1 GB more than the tiled runs)
    return {"output": output, "median_ms": round(median, 3), "p90_ms": round(float(np.percentile(times, 90)), 3),
            "mpix_per_s": round(out_pixels / 1e6 / (median / 1000.0), 3), "peak_mem_mb": round(mem.peak / 2**20, 1),
            "mem_kind": mem.kind, "times_ms": [round(t, 3) for t in times]}


def _torch_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def random_checkpoint(model_name: str, folder: Path) -> Path:
    """A randomly initialised checkpoint (latency does not depend on the weights' values)."""
    import torch

    spec = get_spec(model_name)
    torch.manual_seed(0)
    path = folder / f"{model_name}.safetensors"
    save_checkpoint(path, spec.build(), arch=spec.arch, args=spec.kwargs, meta={"note": "random init for bench"})
    return path


def run_bench(args) -> List[Dict[str, Any]]:
    sizes = [(label, parse_size(label)) for label in args.sizes.split(",") if label.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    precisions = [parse_precision(p) for p in getattr(args, "precisions", "fp32").split(",") if p.strip()]
    source = getattr(args, "input", "random")
    rows: List[Dict[str, Any]] = []
    scratch = Path(tempfile.mkdtemp(prefix="stsr-bench-"))
    for model in models:
        spec = get_spec(model)
        options: Dict[str, Any] = {"threads": args.threads, "fp16": args.fp16 or None}
        if args.weights == "random":
            options["weights_path"] = str(random_checkpoint(model, scratch))
        elif args.weights:
            options["weights_path"] = args.weights
        inputs = {label: bench_input(source, spec.in_channels, w, h, args.seed) for label, (w, h) in sizes}
        reference: Dict[str, np.ndarray] = {}  # size -> the first fp32 output
        for requested in [b.strip() for b in args.backends.split(",") if b.strip()]:
            for precision in precisions:
                try:
                    backend = get_backend(model, requested, precision=precision, **options)
                    error = None
                except RECOVERABLE_ERRORS as exc:
                    backend, error = None, str(exc)
                for label, (w, h) in sizes:
                    row = {"model": model, "backend": requested, "precision": precision, "size": label,
                           "input_wh": [w, h], "fp16": args.fp16, "output_wh": [w * spec.scale, h * spec.scale],
                           "threads": args.threads, "runs": args.runs, "input": source, "median_ms": None,
                           "p90_ms": None, "mpix_per_s": None, "peak_mem_mb": None, "psnr_vs_fp32_db": None,
                           "heldout_change_db": None, "skipped": error}
                    if backend is not None:
                        row.update(kind=backend.kind, provider=backend.provider, device=backend.device,
                                   precision=backend.precision)
                        result = bench_one(backend, inputs[label], spec.scale, args.runs, args.warmup, args.tile)
                        output = result.pop("output")
                        row.update(result)
                        if backend.precision == "fp32" and label not in reference:
                            reference[label] = output
                        if label in reference:
                            row["psnr_vs_fp32_db"] = psnr_between(output, reference[label])
                        kind = backend.name.split(":")[0] if backend.kind != "onnx" else f"onnx-{backend.device}"
                        kind = "openvino-cpu" if backend.kind == "openvino" else kind
                        row["heldout_change_db"] = recorded_change(model, kind, backend.precision, options)
                    rows.append(row)
                    if args.json:
                        print(json.dumps({k: v for k, v in row.items() if k != "times_ms"}), flush=True)
    return rows


def format_table(rows: List[Dict[str, Any]]) -> str:
    header = f"{'model':<12} {'backend':<8} {'prec':<5} {'provider':<28} {'input':>10} {'median ms':>10} " \
             f"{'p90 ms':>10} {'out MP/s':>9} {'peak MB':>8} {'vs fp32':>8} {'held-out':>9}"
    lines = [header, "-" * len(header)]
    for r in rows:
        size = f"{r['input_wh'][0]}x{r['input_wh'][1]}"
        precision = r.get("precision", "fp32")
        if r["skipped"]:
            lines.append(f"{r['model']:<12} {r['backend']:<8} {precision:<5} {'skipped':<28} {size:>10}  "
                         f"{r['skipped']}")
            continue
        vs = r.get("psnr_vs_fp32_db")
        held = r.get("heldout_change_db")
        lines.append(f"{r['model']:<12} {r['backend']:<8} {precision:<5} {r['provider'][:28]:<28} {size:>10} "
                     f"{r['median_ms']:>10.1f} {r['p90_ms']:>10.1f} {r['mpix_per_s']:>9.2f} {r['peak_mem_mb']:>8.0f} "
                     f"{'-' if vs is None else f'{vs:.1f} dB':>8} {'-' if held is None else f'{held:+.3f} dB':>9}")
    lines.append("vs fp32: PSNR of the output against the first fp32 row's on the same input "
                 "(99 = identical up to float rounding); "
                 "held-out: Y-PSNR change on held-out training crops recorded by `python -m export int8`")
    return "\n".join(lines)


def plot(rows: List[Dict[str, Any]], path: Path) -> None:
    """Grouped bars of median latency per input size, one panel per model (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if not r["skipped"]]
    models = sorted({r["model"] for r in rows})
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        mine = [r for r in done if r["model"] == model]
        sizes = list(dict.fromkeys(r["size"] for r in rows if r["model"] == model))
        label_of = lambda r: f"{r['backend']} {r.get('precision', 'fp32')} ({r['provider']})"  # noqa: E731
        backends = list(dict.fromkeys(label_of(r) for r in mine))
        width = 0.8 / max(len(backends), 1)
        for i, label in enumerate(backends):
            picked = [next((r for r in mine if r["size"] == s and label_of(r) == label), None) for s in sizes]
            values = [r["median_ms"] if r else 0 for r in picked]
            bars = ax.bar(np.arange(len(sizes)) + i * width, values, width, label=label)
            for bar, r in zip(bars, picked):  # the quality cost next to the speed
                held = (r or {}).get("heldout_change_db")
                if held is not None and r.get("precision", "fp32") != "fp32":
                    ax.annotate(f"{held:+.2f} dB", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                                ha="center", va="bottom", fontsize=6)
        ax.set_xticks(np.arange(len(sizes)) + 0.4 - width / 2, sizes)
        ax.set_yscale("log")
        ax.set_title(model)
        ax.set_xlabel("input size")
        ax.set_ylabel("median latency (ms)")
        if backends:
            ax.legend(fontsize=7)
    skipped = sorted({f"{r['backend']}: {r['skipped'][:70]}" for r in rows if r["skipped"]})
    if skipped:
        fig.suptitle("skipped: " + " | ".join(skipped), fontsize=7, y=0.02, va="bottom")
        fig.tight_layout(rect=(0, 0.06, 1, 1))
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def environment(args) -> Dict[str, Any]:
    info = {"host": platform.node(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "threads": args.threads, "fp16": args.fp16, "runs": args.runs, "warmup": args.warmup, "seed": args.seed,
            "tile": args.tile, "precisions": args.precisions, "input": args.input, "cpu_flags": list(cpu_flags()),
            "weights": args.weights or "shipped", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for module in ("torch", "onnxruntime", "openvino", "tensorrt"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m serve.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="flashsr_x4", help="comma-separated registered names")
    p.add_argument("--backends", default="torch,onnx,trt",
                   help="comma-separated: torch, onnx, openvino, trt or a KINDS entry")
    p.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16, int8, auto (each backend)")
    p.add_argument("--input", default="example", help="'example' (a real photo), 'random' (seeded noise) or a path")
    p.add_argument("--sizes", default="256,512,1080p", help="comma-separated input sizes: N, WxH, 720p, 1080p, 4k")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch and ORT (default: runtime's)")
    p.add_argument("--fp16", action="store_true", help="half precision where the backend supports it (GPU)")
    p.add_argument("--tile", type=int, default=0, help="time the tiled pipeline with this tile size (0: one pass)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", default=None,
                   help="checkpoint path (one model only), or 'random' for a random-init checkpoint per model")
    p.add_argument("--json", action="store_true", help="print one JSON object per (model, backend, size)")
    p.add_argument("--out-dir", default="runs/bench", help="where bench.json and bench.png go")
    args = p.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        p.error("--runs must be >= 1 and --warmup >= 0")
    if args.weights not in (None, "random") and "," in args.models:
        p.error("--weights PATH applies to one model; use --weights random or STSR_WEIGHTS=DIR for several")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be at least 1 (or left out for the runtime's default), not {args.threads}")
    if not any(m.strip() for m in args.models.split(",")) or not any(v.strip() for v in args.sizes.split(",")):
        p.error("--models and --sizes need at least one entry each")
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        p.error(f"--out-dir {out_dir} is a file, not a folder")
    if args.threads and module_available("torch"):  # ORT and OpenVINO take `threads` per session
        import torch

        torch.set_num_threads(args.threads)
    try:
        rows = run_bench(args)
    except (argparse.ArgumentTypeError, *REQUEST_ERRORS) as exc:  # unknown model / backend / precision, bad input
        print(f"error: {error_message(exc)}", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps({"environment": environment(args), "results": rows}, indent=2))
    plot(rows, out_dir / "bench.png")
    if not args.json:
        print(format_table(rows))
        print(f"wrote {out_dir / 'bench.json'} and {out_dir / 'bench.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
