"""The same load on `python -m serve.triton` and on the Gradio app: throughput, p50/p95 latency, errors.

    python scripts/triton_load.py [--clients 8] [--seconds 60] [--instances 2] [--side both|triton|gradio]

The request is scripts/load_test.py's: FlashSR x2 of examples/sr_tents_lr.png.
Triton gets the decoded image as a [1,H,W,3] UINT8 tensor over HTTP (tritonclient, one client per
thread) and returns float32; the app gets the PNG through gradio_client and returns PNG files, as a
browser would. Each side is started on free loopback ports, warmed up, loaded by N client threads
for --seconds, then stopped; the two runs are sequential so they do not share the CPU.
Needs requirements-triton.txt (see serve/triton.py). Prints one JSON object per side and a table.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]


from load_test import IMAGE, REQUEST_TIMEOUT_S, start_server, stop_server  # noqa: E402

from serve.triton_local import start_local_triton, stop_local_triton  # noqa: E402


def expected_hw() -> tuple:
    from PIL import Image

    with Image.open(IMAGE) as im:
        return im.height * 2, im.width * 2


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = []
        self.errors = []

    def ok(self, seconds: float) -> None:
        with self.lock:
            self.latency.append(seconds)

    def error(self, exc: BaseException) -> None:
        with self.lock:
            self.errors.append(f"{type(exc).__name__}: {str(exc)[-200:]}")


def run_clients(loop, clients: int, seconds: float) -> dict:
    """`clients` threads each calling loop(deadline, tally) until the deadline; the figures."""
    tally = Tally()
    deadline = time.time() + seconds
    threads = [threading.Thread(target=loop, args=(deadline, tally, i), daemon=True) for i in range(clients)]
    started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(deadline - time.time(), 0) + REQUEST_TIMEOUT_S)
    wall = time.time() - started
    hung = sum(t.is_alive() for t in threads)
    lat = sorted(tally.latency)

    def pct(q):
        return round(lat[min(len(lat) - 1, int(round(q * (len(lat) - 1))))], 3) if lat else None
    return {"clients": clients, "seconds": seconds, "wall_s": round(wall, 1), "requests": len(lat),
            "throughput_per_s": round(len(lat) / wall, 2), "latency_s": {"p50": pct(0.5), "p95": pct(0.95),
            "mean": round(statistics.fmean(lat), 3) if lat else None, "max": pct(1.0)},
            "errors": len(tally.errors) + hung,
            "error_samples": tally.errors[:5] + ([f"{hung} client(s) still running"] if hung else [])}


# ----------------------------------------------------------------------------- Triton

def triton_side(clients: int, seconds: float, warmup: float, instances: int, log_dir: Path) -> dict:
    import tritonclient.http as http

    from common.images import read_image, to_uint8

    image = to_uint8(read_image(IMAGE).rgb)[None]
    want = expected_hw()

    def loop(deadline, tally, _):
        client = http.InferenceServerClient(url, connection_timeout=REQUEST_TIMEOUT_S,
                                            network_timeout=REQUEST_TIMEOUT_S)
        tensor = http.InferInput("image", list(image.shape), "UINT8")
        tensor.set_data_from_numpy(image)
        try:
            while time.time() < deadline:
                started = time.perf_counter()
                try:
                    out = client.infer("flashsr_x2", [tensor]).as_numpy("image")
                    if out.shape[1:3] != want:
                        raise AssertionError(f"unexpected output shape {out.shape}")
                    tally.ok(time.perf_counter() - started)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    tally.error(exc)
        finally:
            client.close()

    proc, url = start_local_triton(["flashsr_x2"], log_dir, instances=instances)
    try:
        run_clients(loop, clients, warmup)
        report = run_clients(loop, clients, seconds)
    finally:
        stop_local_triton(proc)
    return {"side": f"triton (serve.triton, {instances} instances, dynamic batching up to 4)", **report}


# ----------------------------------------------------------------------------- Gradio

def gradio_side(clients: int, seconds: float, warmup: float, log_dir: Path) -> dict:
    from gradio_client import Client, handle_file

    want = expected_hw()

    def loop(deadline, tally, i):
        client = Client(url, verbose=False, analytics_enabled=False,
                        download_files=tempfile.mkdtemp(prefix="triton-load-"))
        image = handle_file(str(IMAGE))
        while time.time() < deadline:
            started = time.perf_counter()
            try:
                job = client.submit(image, "flashsr", 2, 256, "auto", False, api_name="/upscale")
                _, _, _, info = job.result(timeout=REQUEST_TIMEOUT_S)
                if info["output_size"] != [want[1], want[0]]:
                    raise AssertionError(f"unexpected output size {info['output_size']}")
                tally.ok(time.perf_counter() - started)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                tally.error(exc)

    proc, url = start_server(log_dir / "app.log")
    try:
        run_clients(loop, clients, warmup)
        report = run_clients(loop, clients, seconds)
    finally:
        stop_server(proc)
    return {"side": "gradio (app.py /upscale, queue concurrency 2)", **report}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60.0, help="measured time per side")
    p.add_argument("--warmup-seconds", type=float, default=10.0, help="the same load first, unmeasured")
    p.add_argument("--instances", type=int, default=2, help="Triton model instances")
    p.add_argument("--side", default="both", choices=["both", "triton", "gradio"])
    p.add_argument("--json", default=None, help="also write the reports to this file")
    args = p.parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="triton-load-"))
    reports = []
    if args.side in ("both", "triton"):
        load = os.getloadavg()[0]
        reports.append({**triton_side(args.clients, args.seconds, args.warmup_seconds, args.instances, log_dir),
                        "loadavg_1min_before": round(load, 2)})
    if args.side in ("both", "gradio"):
        load = os.getloadavg()[0]
        reports.append({**gradio_side(args.clients, args.seconds, args.warmup_seconds, log_dir),
                        "loadavg_1min_before": round(load, 2)})
    for r in reports:
        print(json.dumps(r, indent=2))
    print("\n| side | requests | throughput /s | p50 s | p95 s | errors |\n|---|---|---|---|---|---|")
    for r in reports:
        print(f"| {r['side']} | {r['requests']} | {r['throughput_per_s']} | {r['latency_s']['p50']} | "
              f"{r['latency_s']['p95']} | {r['errors']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2))
    print(f"logs: {log_dir}")
    return 0 if all(r["errors"] == 0 for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
