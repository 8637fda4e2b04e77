"""Benchmark tab: serve.bench's latency benchmark on this machine, table and plot."""
from __future__ import annotations

import argparse
from typing import List, Sequence

import gradio as gr

from .common import limits, models_for, user_errors, workdir
from .inputs import some_of, whole_number

FLAGSHIP = "flashsr_x4"

SIZES = ["128", "256", "512", "720p"]
BACKENDS = ["onnx", "torch", "trt", "onnx-cpu", "onnx-gpu", "torch-cpu", "torch-cuda"]
MAX_RUNS = 20


def _pixels(size: str) -> int:
    from serve.bench import parse_size

    w, h = parse_size(size)
    return w * h


@user_errors
def benchmark(models: Sequence[str], backends: Sequence[str], sizes: Sequence[str], runs: int = 5,
              progress=gr.Progress()):
    """Measure the models' latency on this machine: median/p90 and throughput per model, backend and size.

    Args:
        models: SR model names, e.g. ["flashsr_x4"].
        backends: backends to time, e.g. ["onnx", "torch"]; ones that cannot run here are listed with why.
        sizes: input sizes: "128", "256", "512" or "720p".
        runs: timed runs per combination (1 to 20), after one warm-up run.

    Returns:
        A text table, a latency plot and every figure as a list of dicts.
    """
    from serve.bench import format_table, plot, run_bench

    models = some_of(models, "models", [s.name for s in models_for("sr")])
    backends = some_of(backends, "backends", BACKENDS + ["auto"])
    sizes = some_of(sizes, "sizes", SIZES)
    runs = whole_number(runs, "runs", 1, MAX_RUNS)
    warmup = 1
    work = len(models) * len(backends) * (runs + warmup) * sum(_pixels(s) for s in sizes)
    budget = limits().bench_pixel_runs
    if work > budget:
        raise gr.Error(f"This benchmark would push {work / 1e6:.0f} MP through the models, over this machine's "
                       f"budget of {budget / 1e6:.0f} MP: choose fewer sizes, backends or runs.")
    progress(0, desc=f"benchmarking {len(models) * len(backends)} model/backend pairs")
    args = argparse.Namespace(models=",".join(models), backends=",".join(backends), sizes=",".join(sizes), runs=runs,
                              warmup=warmup, threads=None, fp16=False, tile=0, seed=0, weights=None, json=False)
    rows = run_bench(args)
    out = workdir("bench")
    plot(rows, out / "bench.png")
    table = format_table(rows)
    slim = [{k: v for k, v in r.items() if k != "times_ms"} for r in rows]
    return table, str(out / "bench.png"), slim


def build() -> None:
    models: List[str] = [s.name for s in models_for("sr")]
    lim = limits()
    gr.Markdown("Latency of the models on this machine, per backend and input size (one pass over a random "
                "input, no tiling; 1 warm-up run, then the timed runs). Backends that cannot run here are listed "
                "with the reason. Requests of other users running at the same time slow it down.")
    with gr.Row():
        chosen_models = gr.CheckboxGroup(models, value=[FLAGSHIP] if FLAGSHIP in models else models[:1],
                                         label="Models")
        backends = gr.CheckboxGroup(BACKENDS, value=["onnx", "torch"] + (["trt"] if lim.gpu else []),
                                    label="Backends")
        sizes = gr.CheckboxGroup(SIZES, value=["128", "256"], label="Input sizes")
        runs = gr.Slider(1, MAX_RUNS, value=5, step=1, label="Timed runs")
    run = gr.Button("Run benchmark", variant="primary", elem_id="bench-run")
    table = gr.Code(label="Results", language=None, elem_id="bench-table")
    chart = gr.Image(label="Median latency", type="filepath", interactive=False)
    with gr.Accordion("All figures", open=False):
        rows = gr.JSON(label="All figures")
    run.click(benchmark, [chosen_models, backends, sizes, runs], [table, chart, rows], api_name="benchmark",
              concurrency_id="bench", concurrency_limit=1, preprocess=False)
