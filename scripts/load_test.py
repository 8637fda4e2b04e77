"""Load test: N concurrent gradio_client clients against the app on loopback for a fixed time.

    python scripts/load_test.py [--clients 20] [--seconds 60] [--url URL --pid PID]
    python scripts/load_test.py --adversarial --clients 8 --seconds 600 --warmup-seconds 60

Without --url it starts `python app.py` on a free loopback port itself and stops it at the end.
Each client loops over a request mix until the time is up: 85% /upscale (x2 of a small bundled image),
10% a non-image upload (must be refused with its clear message: counted as expected, not as an error),
5% /uncertainty with K=4. Reports requests, errors (goal 0), latency, and the server's RSS after a
--warmup-seconds phase of the same load and at the end (goal: growth < 10%; the RSS after the first
sequential requests is reported too: the step from it is thread pools and allocator arenas filling
once, not growth). Bounded: no request starts after the deadline, each has
a timeout, and a watchdog ends the run 300 s after its planned end whatever happens. Exit code 0 when both
goals are met.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
IMAGE = ROOT / "examples" / "sr_tents_lr.png"
REQUEST_TIMEOUT_S = 120
ADVERSARIAL_TIMEOUT_S = 600  # a 16 MP output behind 7 other clients' requests on 2 cores
PEAK_TARGET_MB, END_TARGET_RATIO = 3000, 1.5


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(log_path: Path):
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}; see {log_path}")
        try:
            urllib.request.urlopen(url + "/config", timeout=2).read()
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"app.py did not answer within 120 s; see {log_path}")


def stop_server(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = {}
        self.expected_refusals = 0
        self.errors = []
        self.latency = []

    def record(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.ok[kind] = self.ok.get(kind, 0) + 1
            self.latency.append(seconds)


def client_loop(url: str, deadline: float, stats: Stats, bad_file: Path, seed: int) -> None:
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    rng = random.Random(seed)
    try:
        client = Client(url, verbose=False, analytics_enabled=False, download_files=tempfile.mkdtemp(prefix="load-"))
    except Exception as exc:  # noqa: BLE001 - counted as an error
        with stats.lock:
            stats.errors.append(f"connect: {type(exc).__name__}: {exc}")
        return
    image = handle_file(str(IMAGE))
    from PIL import Image

    with Image.open(IMAGE) as src:
        expected = [src.width * 2, src.height * 2]
    while time.time() < deadline:
        pick = rng.random()
        started = time.perf_counter()
        try:
            if pick < 0.85:
                job = client.submit(image, "flashsr", 2, 256, "auto", False, api_name="/upscale")
                (_, after), _, _, info = job.result(timeout=REQUEST_TIMEOUT_S)
                if info["output_size"] != expected:
                    raise AssertionError(f"unexpected output size {info['output_size']}, expected {expected}")
                stats.record("upscale", time.perf_counter() - started)
            elif pick < 0.95:
                job = client.submit(handle_file(str(bad_file)), "flashsr", 2, 256, "auto", False, api_name="/upscale")
                try:
                    job.result(timeout=REQUEST_TIMEOUT_S)
                    raise AssertionError("a non-image upload was accepted")
                except AppError as exc:
                    if "not an image file" not in str(exc):
                        raise
                    with stats.lock:
                        stats.expected_refusals += 1
            else:
                job = client.submit(image, "flashsr_x2", 4, "mc", "auto", api_name="/uncertainty")
                outputs = job.result(timeout=REQUEST_TIMEOUT_S)
                if outputs[-1]["passes"] != 4:
                    raise AssertionError("uncertainty summary does not say K=4")
                stats.record("uncertainty", time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
            with stats.lock:
                stats.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")


def make_large_inputs(folder: Path) -> dict:
    """The largest inputs the CPU limits allow (ui.common.limits): 2 MP for x2 / colorize / interpolation,
    1 MP for x4 (16 MP out), made from a bundled photo so they are not flat."""
    from PIL import Image

    base = Image.open(ROOT / "examples" / "sr_car_lr.png").convert("RGB")
    sizes = {"x2": (1414, 1414), "x4": (1000, 1000), "frame_a": (1632, 1224)}
    paths = {}
    for name, size in sizes.items():
        paths[name] = folder / f"large_{name}.png"
        base.resize(size, Image.BICUBIC).save(paths[name])
    shifted = Image.open(paths["frame_a"]).transform(sizes["frame_a"], Image.AFFINE, (1, 0, 6, 0, 1, 3))
    paths["frame_b"] = folder / "large_frame_b.png"
    shifted.save(paths["frame_b"])
    return paths


def adversarial_requests(large: dict) -> list:
    """(name, weight, call(client)) of the adversarial mix: every model, the largest allowed inputs, the
    benchmark at its largest size, the uncertainty map at the largest K."""
    from gradio_client import handle_file

    from models import REGISTRY

    sr = [s for s in REGISTRY.values() if s.task == "sr" and s.has_weights()]
    mc = [s.name for s in sr if s.mc_dropout]
    calls = []
    for spec in sr:
        image = large["x4" if spec.scale == 4 else "x2"]
        family = spec.name.rsplit("_x", 1)[0]
        calls.append((f"upscale {spec.name}", 2, lambda c, f=family, s=spec.scale, i=image: c.submit(
            handle_file(str(i)), f, s, 512, "auto", False, api_name="/upscale")))
        calls.append((f"benchmark {spec.name} 720p", 1, lambda c, n=spec.name: c.submit(
            [n], ["onnx"], ["720p"], 3, api_name="/benchmark")))
    for name in mc:
        calls.append((f"uncertainty {name} K=128", 2, lambda c, n=name: c.submit(
            handle_file(str(large["x2"])), n, 128, "mc", "auto", api_name="/uncertainty")))
    calls.append(("colorize 2 MP", 3, lambda c: c.submit(handle_file(str(large["x2"])), None, "auto",
                                                        api_name="/colorize")))
    calls.append(("interpolate 2 MP x4", 3, lambda c: c.submit(handle_file(str(large["frame_a"])),
                                                               handle_file(str(large["frame_b"])), "×4", None, "auto",
                                                               api_name="/interpolate")))
    calls.append(("video x2 SR", 2, lambda c: c.submit(handle_file(str(ROOT / "examples" / "clip_cdfi.webm")), 1,
                                                      "flashsr_x2", "auto", None, api_name="/video")))
    return calls


def adversarial_loop(url: str, deadline: float, stats: Stats, calls: list, seed: int) -> None:
    from gradio_client import Client

    rng = random.Random(seed)
    client = Client(url, verbose=False, analytics_enabled=False, download_files=tempfile.mkdtemp(prefix="load-"))
    names, weights = [c[0] for c in calls], [c[1] for c in calls]
    while time.time() < deadline:
        index = rng.choices(range(len(calls)), weights)[0]
        started = time.perf_counter()
        try:
            calls[index][2](client).result(timeout=ADVERSARIAL_TIMEOUT_S)
            stats.record(names[index].split()[0], time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
            with stats.lock:
                stats.errors.append(f"{names[index]}: {type(exc).__name__}: {str(exc)[:200]}")


def adversarial(args) -> int:
    """10 minutes of the adversarial mix from 8 clients; RSS at start (after one request of each kind and
    a warm-up of the same mix), peak and end. Target: peak <= 3 GB, end <= 1.5x the post-warm-up level."""
    scratch = Path(tempfile.mkdtemp(prefix="stsr-adversarial-"))
    calls = adversarial_requests(make_large_inputs(scratch))
    proc, url = (None, args.url.rstrip("/")) if args.url else start_server(scratch / "app.log")
    pid = args.pid if args.url else proc.pid
    samples, stats = [], Stats()
    try:
        from gradio_client import Client

        first = Client(url, verbose=False, analytics_enabled=False, download_files=str(scratch))
        rss_boot = rss_mb(pid)
        seen = set()
        for name, _, call in calls:  # one request of each kind (upscale x2/x4, benchmark, uncertainty, ...)
            kind = (name.split()[0], name.rsplit("_x", 1)[-1][:1] if name.startswith("upscale") else "")
            if kind not in seen:
                seen.add(kind)
                call(first).result(timeout=ADVERSARIAL_TIMEOUT_S)
        warm_stats = Stats()
        _run_clients(adversarial_loop, url, time.time() + args.warmup_seconds, warm_stats, calls, args.clients)
        rss_start = rss_mb(pid)
        deadline = time.time() + args.seconds
        threads = _start_clients(adversarial_loop, url, deadline, stats, calls, args.clients)
        while any(t.is_alive() for t in threads) and time.time() < deadline + ADVERSARIAL_TIMEOUT_S + 30:
            samples.append(round(rss_mb(pid), 1))
            time.sleep(2)
        rss_end = rss_mb(pid)
    finally:
        if proc is not None:
            stop_server(proc)
    peak = max(samples + [rss_end])
    report = {"clients": args.clients, "seconds": args.seconds, "requests": stats.ok, "errors": len(stats.errors),
              "error_samples": stats.errors[:5],
              "rss_mb": {"boot": round(rss_boot, 1), "after_warmup": round(rss_start, 1), "peak": peak,
                         "end": round(rss_end, 1)},
              "end_over_warm": round(rss_end / rss_start, 2)}
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({**report, "every_2s": samples}, indent=2))
    ok = peak <= PEAK_TARGET_MB and rss_end <= END_TARGET_RATIO * rss_start and not stats.errors
    print(f"{'PASS' if ok else 'FAIL'}: peak RSS {peak:.0f} MB (target <= {PEAK_TARGET_MB}), end {rss_end:.0f} MB = "
          f"{rss_end / rss_start:.2f}x the post-warm-up {rss_start:.0f} MB (target <= {END_TARGET_RATIO}x), "
          f"{sum(stats.ok.values())} requests, {len(stats.errors)} errors")
    return 0 if ok else 1


def _start_clients(loop, url, deadline, stats, payload, clients) -> list:
    threads = [threading.Thread(target=loop, args=(url, deadline, stats, payload, i), daemon=True)
               for i in range(clients)]
    for t in threads:
        t.start()
    return threads


def _run_clients(loop, url, deadline, stats, payload, clients) -> None:
    for t in _start_clients(loop, url, deadline, stats, payload, clients):
        t.join(timeout=max(deadline - time.time(), 0) + ADVERSARIAL_TIMEOUT_S)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--seconds", type=float, default=60.0, help="measured time")
    p.add_argument("--warmup-seconds", type=float, default=15.0,
                   help="unmeasured concurrent load first; the RSS baseline is taken after it")
    p.add_argument("--url", default=None, help="an app already running (then pass --pid to measure its memory)")
    p.add_argument("--pid", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the figures to this file")
    p.add_argument("--adversarial", action="store_true",
                   help="the adversarial mix (every model, largest inputs, benchmark at 720p, K=128); "
                        "use with --clients 8 --seconds 600")
    args = p.parse_args(argv)
    if args.adversarial:
        return adversarial(args)

    children = []

    def overran() -> None:
        print("watchdog: the load test overran; stopping", file=sys.stderr)
        for child in children:
            child.kill()
        os._exit(3)

    watchdog = threading.Timer(args.seconds + args.warmup_seconds + 300, overran)
    watchdog.daemon = True
    watchdog.start()
    scratch = Path(tempfile.mkdtemp(prefix="stsr-load-"))
    bad_file = scratch / "notes.png"
    bad_file.write_bytes(b"not an image\n" * 50)
    proc = None
    if args.url:
        url, pid = args.url.rstrip("/"), args.pid
    else:
        proc, url = start_server(scratch / "app.log")
        children.append(proc)
        pid = proc.pid
    try:
        from gradio_client import Client, handle_file

        warm = Client(url, verbose=False, analytics_enabled=False, download_files=str(scratch))
        t0 = time.perf_counter()
        warm.predict(handle_file(str(IMAGE)), "flashsr", 2, 256, "auto", False, api_name="/upscale")
        warm.predict(handle_file(str(IMAGE)), "flashsr_x2", 4, "mc", "auto", api_name="/uncertainty")
        rss_first = rss_mb(pid) if pid else None
        if args.warmup_seconds > 0:  # the same load, unmeasured: thread pools and allocator arenas fill up
            warm_stats = Stats()
            warm_deadline = time.time() + args.warmup_seconds
            warmers = [threading.Thread(target=client_loop, args=(url, warm_deadline, warm_stats, bad_file, -i - 1),
                                        daemon=True) for i in range(args.clients)]
            for t in warmers:
                t.start()
            for t in warmers:
                t.join(timeout=max(warm_deadline - time.time(), 0) + REQUEST_TIMEOUT_S)
            if warm_stats.errors:
                print(f"warm-up errors: {warm_stats.errors[:3]}", file=sys.stderr)
        warmup_s = time.perf_counter() - t0
        rss_start = rss_mb(pid) if pid else None
        samples = []
        stats = Stats()
        deadline = time.time() + args.seconds
        threads = [threading.Thread(target=client_loop, args=(url, deadline, stats, bad_file, i), daemon=True)
                   for i in range(args.clients)]
        started = time.time()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads) and time.time() < deadline + REQUEST_TIMEOUT_S + 30:
            if pid:
                samples.append(round(rss_mb(pid), 1))
            time.sleep(2)
        wall = time.time() - started
        hung = sum(t.is_alive() for t in threads)
        rss_end = rss_mb(pid) if pid else None
    finally:
        if proc is not None:
            stop_server(proc)
    done = sum(stats.ok.values())
    lat = sorted(stats.latency)
    report = {
        "clients": args.clients, "seconds": args.seconds, "wall_s": round(wall, 1), "warmup_s": round(warmup_s, 2),
        "successful": stats.ok, "expected_refusals": stats.expected_refusals, "errors": len(stats.errors) + hung,
        "error_samples": stats.errors[:5] + ([f"{hung} client(s) still running at the end"] if hung else []),
        "throughput_per_s": round((done + stats.expected_refusals) / max(wall, 1e-9), 2),
        "latency_s": {"median": round(statistics.median(lat), 2) if lat else None,
                      "p95": round(lat[int(0.95 * (len(lat) - 1))], 2) if lat else None,
                      "max": round(lat[-1], 2) if lat else None},
        "rss_mb": {"after_first_requests": round(rss_first, 1) if rss_first else None,
                   "after_warmup": round(rss_start, 1) if rss_start else None,
                   "end": round(rss_end, 1) if rss_end else None, "max": max(samples) if samples else None,
                   "every_2s": samples},
    }
    growth = (rss_end - rss_start) / rss_start * 100 if rss_start and rss_end else None
    report["rss_growth_pct"] = round(growth, 1) if growth is not None else None
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    ok = report["errors"] == 0 and (growth is None or growth < 10.0)
    print(f"{'PASS' if ok else 'FAIL'}: {done} requests served + {stats.expected_refusals} refused as expected, "
          f"{report['errors']} errors, RSS growth {report['rss_growth_pct']}% "
          f"({report['rss_mb']['after_warmup']} -> {report['rss_mb']['end']} MB)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
