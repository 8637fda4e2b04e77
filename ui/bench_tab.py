"""Benchmark tab: serve.bench's latency benchmark on this machine, table and plot."""
from __future__ import annotations

import argparse
from typing import List, Sequence

import gradio as gr

from .cancel import cancel_on, stop_button
from .common import LONG_JOBS, limits, models_for, torch_available, user_errors, workdir
from .inputs import some_of, whole_number

FLAGSHIP = "flashsr_x4"

SIZES = ["128", "256", "512", "720p"]
BACKENDS = ["onnx", "openvino", "torch", "trt", "onnx-cpu", "onnx-gpu", "torch-cpu", "torch-cuda"]
PRECISIONS = ["exact fp32", "fast bf16", "fastest int8"]  # serve.precision.LABELS
MAX_RUNS = 20
# Tiles bound the memory of one pass: SRGAN-type models hold 64-channel features at the OUTPUT size, which
# for one untiled 720p pass at x4 is ~4 GB a tensor (a server running the adversarial mix was OOM-killed).
BENCH_TILE = 256


def shown_backends() -> List[str]:
    """BACKENDS less the PyTorch ones when torch is not installed (the API still takes them: skipped, with why)."""
    return BACKENDS if torch_available() else [b for b in BACKENDS if not b.startswith("torch")]


def _pixels(size: str) -> int:
    from serve.bench import parse_size

    w, h = parse_size(size)
    return w * h


@user_errors
def benchmark(models: Sequence[str], backends: Sequence[str], sizes: Sequence[str], runs: int = 5,
              precisions: Sequence[str] = ("exact fp32",), progress=gr.Progress()):
    """Measure the models' latency on this machine: median/p90 and throughput per model, backend and size.

    Args:
        models: SR model names, e.g. ["flashsr_x4"].
        backends: backends to time, e.g. ["onnx", "torch"]; ones that cannot run here are listed with why.
        sizes: input sizes: "128", "256", "512" or "720p".
        runs: timed runs per combination (1 to 20), after one warm-up run.
        precisions: "exact fp32", "fast bf16" and/or "fastest int8"; each row also shows the PSNR change.

    Returns:
        A text table, a latency plot and every figure as a list of dicts.
    """
    from serve.bench import format_table, plot, run_bench
    from serve.precision import parse_precision

    models = some_of(models, "models", [s.name for s in models_for("sr")])
    backends = some_of(backends, "backends", BACKENDS + ["auto"])
    sizes = some_of(sizes, "sizes", SIZES)
    runs = whole_number(runs, "runs", 1, MAX_RUNS)
    precisions = some_of(precisions if precisions else ["exact fp32"], "precisions", PRECISIONS)
    precisions = [parse_precision(p) for p in precisions]
    warmup = 1
    work = len(models) * len(backends) * len(precisions) * (runs + warmup) * sum(_pixels(s) for s in sizes)
    budget = limits().bench_pixel_runs
    if work > budget:
        raise gr.Error(f"This benchmark would push {work / 1e6:.0f} MP through the models, over this machine's "
                       f"budget of {budget / 1e6:.0f} MP: choose fewer sizes, backends or runs.")
    progress(0, desc=f"benchmarking {len(models) * len(backends) * len(precisions)} model/backend/precision runs")
    args = argparse.Namespace(models=",".join(models), backends=",".join(backends), sizes=",".join(sizes), runs=runs,
                              warmup=warmup, threads=None, fp16=False, tile=BENCH_TILE, seed=0, weights=None,
                              json=False,
                              precisions=",".join(precisions), input="example")
    rows = run_bench(args)
    out = workdir("bench")
    plot(rows, out / "bench.png")
    table = format_table(rows)
    slim = [{k: v for k, v in r.items() if k != "times_ms"} for r in rows]
    return table, str(out / "bench.png"), slim


def build() -> None:
    models: List[str] = [s.name for s in models_for("sr")]
    lim = limits()
    gr.Markdown("Latency of the models on this machine, per backend, precision and input size (one pass over the "
                f"same photo for every row, tiled at {BENCH_TILE} px as the SR tab serves; 1 warm-up run, then the "
                "timed runs). Next to the speed: the "
                "PSNR of each output against the fp32 output, and the Y-PSNR change measured on held-out training "
                "images when `python -m export int8` recorded one. bf16 runs on OpenVINO where the CPU has it; "
                "int8 on ONNX Runtime and OpenVINO. Combinations that cannot run here are listed with the reason. "
                "Requests of other users running at the same time slow it down.")
    with gr.Row():
        chosen_models = gr.CheckboxGroup(models, value=[FLAGSHIP] if FLAGSHIP in models else models[:1],
                                         label="Models")
        backends = gr.CheckboxGroup(shown_backends(), value=["onnx"] + (["torch"] if torch_available() else [])
                                    + (["trt"] if lim.gpu else []),
                                    label="Backends")
        precisions = gr.CheckboxGroup(PRECISIONS, value=["exact fp32"], label="Precisions")
        sizes = gr.CheckboxGroup(SIZES, value=["128", "256"], label="Input sizes")
        runs = gr.Slider(1, MAX_RUNS, value=5, step=1, label="Timed runs")
    with gr.Row():
        run = gr.Button("Run benchmark", variant="primary", elem_id="bench-run")
        stop = stop_button()
    table = gr.Code(label="Results", language=None, elem_id="bench-table")
    chart = gr.Image(label="Median latency", type="filepath", interactive=False)
    with gr.Accordion("All figures", open=False):
        rows = gr.JSON(label="All figures")
    event = run.click(benchmark, [chosen_models, backends, sizes, runs, precisions], [table, chart, rows],
                      api_name="benchmark", concurrency_id=LONG_JOBS, concurrency_limit=1, preprocess=False)
    cancel_on(stop, event)
