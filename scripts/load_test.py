"""Load test: N concurrent gradio_client clients against the app on loopback for a fixed time.

    python scripts/load_test.py [--clients 20] [--seconds 60] [--url URL --pid PID]

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
IMAGE = ROOT / "examples" / "sr_tents_lr.png"
REQUEST_TIMEOUT_S = 120


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
    while time.time() < deadline:
        pick = rng.random()
        started = time.perf_counter()
        try:
            if pick < 0.85:
                job = client.submit(image, "flashsr", 2, 256, "auto", False, api_name="/upscale")
                (_, after), _, _, info = job.result(timeout=REQUEST_TIMEOUT_S)
                if info["output_size"] != [250, 360]:
                    raise AssertionError(f"unexpected output size {info['output_size']}")
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--seconds", type=float, default=60.0, help="measured time")
    p.add_argument("--warmup-seconds", type=float, default=15.0,
                   help="unmeasured concurrent load first; the RSS baseline is taken after it")
    p.add_argument("--url", default=None, help="an app already running (then pass --pid to measure its memory)")
    p.add_argument("--pid", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args(argv)

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
