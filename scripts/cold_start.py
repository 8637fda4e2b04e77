"""Cold start of the app: seconds from `python app.py` to the server answering HTTP, and to the first
/upscale result (flashsr x2 on examples/sr_car_lr.png, backend auto). README "Install size and cold start".

    python scripts/cold_start.py [--python /path/to/venv/bin/python] [--cwd CHECKOUT] [--runs 3]

The app runs under --python in --cwd (another checkout or venv); the client (gradio_client) runs here.
Prints one JSON object per run.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {limit_s:.0f} s")


def one_run(python: str, cwd: Path, limit_s: float) -> dict:
    from gradio_client import Client, handle_file

    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    start = time.monotonic()
    proc = subprocess.Popen([python, "app.py", "--host", "127.0.0.1", "--port", str(port)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_http(url, proc, limit_s)
        http_s = time.monotonic() - start
        client = Client(url, verbose=False, analytics_enabled=False)
        *_, info = client.predict(handle_file(str(ROOT / "examples" / "sr_car_lr.png")), "flashsr", 2, 256, "auto",
                                  False, api_name="/upscale")
        return {"http_s": round(http_s, 1), "first_upscale_s": round(time.monotonic() - start, 1),
                "selection": info.get("selection", "")[:80]}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--python", default=sys.executable, help="the interpreter (venv) that runs the app")
    p.add_argument("--cwd", type=Path, default=ROOT, help="the checkout whose app.py runs")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--limit", type=float, default=600.0, help="seconds to wait for the server")
    args = p.parse_args()
    for _ in range(args.runs):
        print(json.dumps({"python": args.python, **one_run(args.python, args.cwd, args.limit)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
