"""Latency benchmark of every backend on the same inputs.

    python -m serve.bench --models flashsr_x4 --backends torch,onnx,trt --sizes 256,512,1080p --runs 10
        [--warmup 2] [--threads 2] [--json] [--out-dir runs/bench] [--weights PATH|random] [--tile 0] [--fp16]

Sizes are input sizes: '256' is 256x256, '1080p' 1920x1080 (W x H), or 'WxH'. Each (model, size) gets
one seeded random input shared by all backends. Warm-up runs are not timed; CUDA runs are timed with
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
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from models import CheckpointError, get_spec, save_checkpoint

from .backends import Backend
from .runtime import RECOVERABLE_ERRORS, get_backend
from .tiling import plan_for, tiled_apply

NAMED_SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "1440p": (2560, 1440), "2160p": (3840, 2160),
               "4k": (3840, 2160)}


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
    return w, h


def _status_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _release_free_heap() -> None:
    """Hand freed heap pages back to the OS (glibc malloc_trim) so the next RSS growth is this run's."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak extra memory of a block of runs: host RSS growth, or CUDA allocator peak for torch on CUDA."""

    def __init__(self, backend: Backend):
        self.cuda = backend.device == "cuda" and backend.kind == "torch"
        self.kind = "cuda_alloc" if self.cuda else "rss"

    def __enter__(self):
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        _release_free_heap()
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # resets VmHWM to the current RSS
            self.base, self.source = _status_kb("VmRSS") * 1024, "VmHWM"
        except (OSError, TypeError):
            self.base, self.source = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "ru_maxrss"
        return self

    def __exit__(self, *exc):
        if self.cuda:
            import torch

            self.peak = torch.cuda.max_memory_allocated() - self.base
        elif self.source == "VmHWM":
            self.peak = (_status_kb("VmHWM") or 0) * 1024 - self.base
        else:
            self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self.base
        self.peak = max(int(self.peak), 0)
        return False


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


def feeds_for(backend: Backend, x: np.ndarray) -> Dict[str, np.ndarray]:
    """Inputs for every tensor of the model's contract, built from the one image `x`.

    Extra image inputs (interpolation's second frame) get `x` shifted by 4 px so there is motion;
    non-image inputs (the timestep) get 0.5 per sample.
    """
    feeds: Dict[str, np.ndarray] = {}
    for index, tensor in enumerate(backend.inputs):
        if tensor.channels is None:
            feeds[tensor.name] = np.full((x.shape[0], 1, 1, 1), 0.5, np.float32)
        else:
            feeds[tensor.name] = x if index == 0 else np.ascontiguousarray(np.roll(x, 4, axis=3))
    return feeds


def bench_one(backend: Backend, x: np.ndarray, scale: int, runs: int, warmup: int, tile: int) -> Dict[str, Any]:
    name_in, name_out = backend.inputs[0].name, backend.outputs[0].name
    if len(backend.inputs) > 1:
        feeds = feeds_for(backend, x)
        call = lambda: backend.run(feeds)  # noqa: E731  (multi-input models are not tiled here)
    elif tile > 0:
        plan = plan_for(backend.receptive_radius, tile=tile)
        call = lambda: tiled_apply(lambda b: backend.run({name_in: b})[name_out], x, scale, plan,  # noqa: E731
                                   backend.spec.pad_multiple)
    else:
        call = lambda: backend.run({name_in: x})  # noqa: E731
    cuda = backend.device == "cuda" and _torch_cuda()
    with PeakMemory(backend) as mem:
        times = time_runs(call, runs, warmup, cuda)
    median = statistics.median(times)
    out_pixels = x.shape[2] * x.shape[3] * scale * scale
    return {"median_ms": round(median, 3), "p90_ms": round(float(np.percentile(times, 90)), 3),
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
    rows: List[Dict[str, Any]] = []
    scratch = Path(tempfile.mkdtemp(prefix="stsr-bench-"))
    for model in models:
        spec = get_spec(model)
        options: Dict[str, Any] = {"threads": args.threads, "fp16": args.fp16 or None}
        if args.weights == "random":
            options["weights_path"] = str(random_checkpoint(model, scratch))
        elif args.weights:
            options["weights_path"] = args.weights
        inputs = {label: np.random.default_rng([args.seed, w, h]).random((1, spec.in_channels, h, w), np.float32)
                  for label, (w, h) in sizes}
        for requested in [b.strip() for b in args.backends.split(",") if b.strip()]:
            try:
                backend = get_backend(model, requested, **options)
                error = None
            except RECOVERABLE_ERRORS as exc:
                backend, error = None, str(exc)
            for label, (w, h) in sizes:
                row = {"model": model, "backend": requested, "size": label, "input_wh": [w, h], "fp16": args.fp16,
                       "output_wh": [w * spec.scale, h * spec.scale], "threads": args.threads, "runs": args.runs,
                       "median_ms": None, "p90_ms": None, "mpix_per_s": None, "peak_mem_mb": None, "skipped": error}
                if backend is not None:
                    row.update(kind=backend.kind, provider=backend.provider, device=backend.device)
                    row.update(bench_one(backend, inputs[label], spec.scale, args.runs, args.warmup, args.tile))
                rows.append(row)
                if args.json:
                    print(json.dumps({k: v for k, v in row.items() if k != "times_ms"}), flush=True)
    return rows


def format_table(rows: List[Dict[str, Any]]) -> str:
    header = f"{'model':<12} {'backend':<8} {'provider':<24} {'input':>10} {'median ms':>10} {'p90 ms':>10} " \
             f"{'out MP/s':>9} {'peak MB':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        size = f"{r['input_wh'][0]}x{r['input_wh'][1]}"
        if r["skipped"]:
            lines.append(f"{r['model']:<12} {r['backend']:<8} {'skipped':<24} {size:>10}  {r['skipped']}")
            continue
        lines.append(f"{r['model']:<12} {r['backend']:<8} {r['provider'][:24]:<24} {size:>10} {r['median_ms']:>10.1f} "
                     f"{r['p90_ms']:>10.1f} {r['mpix_per_s']:>9.2f} {r['peak_mem_mb']:>8.0f}")
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
        backends = list(dict.fromkeys(f"{r['backend']} ({r['provider']})" for r in mine))
        width = 0.8 / max(len(backends), 1)
        for i, label in enumerate(backends):
            values = [next((r["median_ms"] for r in mine if r["size"] == s
                            and f"{r['backend']} ({r['provider']})" == label), 0) for s in sizes]
            ax.bar(np.arange(len(sizes)) + i * width, values, width, label=label)
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
            "tile": args.tile,
            "weights": args.weights or "shipped", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for module in ("torch", "onnxruntime", "tensorrt"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m serve.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="flashsr_x4", help="comma-separated registered names")
    p.add_argument("--backends", default="torch,onnx,trt", help="comma-separated: torch, onnx, trt or a KINDS entry")
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
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        rows = run_bench(args)
    except (KeyError, CheckpointError, argparse.ArgumentTypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps({"environment": environment(args), "results": rows}, indent=2))
    plot(rows, out_dir / "bench.png")
    if not args.json:
        print(format_table(rows))
        print(f"wrote {out_dir / 'bench.json'} and {out_dir / 'bench.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
