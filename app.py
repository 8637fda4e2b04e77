"""Spatio-temporal super-resolution: the Gradio Space.

    python app.py [--host 127.0.0.1] [--port 7860]

Tabs: super-resolution, colorization, uncertainty map, frame interpolation / video, benchmark.
Every tab is also an API endpoint (see README "API"): /upscale, /colorize, /colorize_video, /uncertainty,
/interpolate, /video, /benchmark. Start-up builds no model: ONNX sessions are created on first use
per model and cached (serve.runtime) from the committed ONNX exports in weights/onnx/, so PyTorch is
optional (requirements.txt leaves it out); with torch installed a missing or stale export is rebuilt then.
"""
from __future__ import annotations

import argparse
import logging
import os

import gradio as gr

from export.onnx_files import REGENERATE
from serve.memory import bound_heap
from serve.runtime import stale_exports
from ui import bench_tab, colorize_tab, sr_tab, uncertainty_tab, video_tab
from ui.common import limits, log, models_for, torch_available

TITLE = "Spatio-temporal super-resolution"
CSS = """
#sr-summary, .stsr-intro { font-size: 0.95rem; }
"""
MAX_FILE_SIZE = "64mb"
QUEUE_SIZE = 64


def build_demo() -> gr.Blocks:
    with gr.Blocks(title=TITLE, delete_cache=(900, 3600)) as demo:
        gr.Markdown(f"# {TITLE}\nUpscale photos and videos with small fast networks (FlashSR), estimate where the "
                    "model is unsure, and measure latency on this machine. Every tab is also an API endpoint.",
                    elem_classes="stsr-intro")
        with gr.Tab("Super-resolution", id="sr"):
            sr_tab.build()
        with gr.Tab("Colorization", id="colorize"):
            colorize_tab.build()
        with gr.Tab("Uncertainty map", id="uncertainty"):
            uncertainty_tab.build()
        with gr.Tab("Frame interpolation", id="video"):
            video_tab.build()
        with gr.Tab("Benchmark", id="bench"):
            bench_tab.build()
    # On a CPU Space one compute slot: each request already uses every core (ONNX Runtime / OpenVINO
    # threads), and two large requests at once doubled the peak memory (adversarial load test).
    compute = 2 if limits().gpu else 1
    # image tasks share one "compute" pool; video and benchmark take turns in one LONG_JOBS slot (a 720p
    # benchmark beside a video job beside a 16 MP upscale peaked at 3.2 GB)
    demo.queue(default_concurrency_limit=compute, max_size=QUEUE_SIZE)
    return demo


def launch_kwargs() -> dict:
    return {"theme": gr.themes.Soft(), "css": CSS, "show_error": True, "max_file_size": MAX_FILE_SIZE,
            "footer_links": ["api"], "mcp_server": True}


def log_startup() -> None:
    lim = limits()
    log.info("device: %s; SR input limit %.0f MP, output %.0f MP", "GPU" if lim.gpu else "CPU",
             lim.sr_input_pixels / 1e6, lim.sr_output_pixels / 1e6)
    log.info("PyTorch %s", "installed: the torch backend and re-exports are available" if torch_available()
             else "not installed: serving the committed ONNX exports on ONNX Runtime / OpenVINO")
    for name, reason in stale_exports():
        log.warning("%s: %s; %s", name, reason, "it will be re-exported on the first request" if torch_available()
                    else f"its model cannot run until `{REGENERATE}` is run where torch is installed")
    for task in ("colorize", "interpolate"):
        if not models_for(task):
            log.info("no trained %s model: its tab shows 'not available yet'", task)


bound_heap()  # large arrays mmapped and returned on free (serve.memory)
demo = build_demo()

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=TITLE)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME"),
                        help="default 127.0.0.1; Spaces set GRADIO_SERVER_NAME=0.0.0.0")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log_startup()
    demo.launch(server_name=args.host, server_port=args.port, **launch_kwargs())
