"""Start and stop `python -m serve.triton` on free loopback ports (the load script and the end-to-end test).

The server is a child process so that its tritonserver, Python stubs and threads go away with it;
SIGINT lets PyTriton shut tritonserver down cleanly before the process is killed.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_local_triton(models: Sequence[str], log_dir: Path, *, instances: int = 1, extra: Sequence[str] = (),
                       env: Optional[Dict[str, str]] = None) -> Tuple[subprocess.Popen, str]:
    """Start serve.triton for `models` and wait until every one is ready; returns (process, "host:port")."""
    import tritonclient.http as http

    ports = [free_port() for _ in range(3)]
    command = [sys.executable, "-m", "serve.triton", "--models", ",".join(models), "--instances", str(instances),
               "--http-port", str(ports[0]), "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2]),
               "--log-file", str(log_dir / "tritonserver.log"), *extra]
    log_path = log_dir / "serve_triton.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})
    url = f"127.0.0.1:{ports[0]}"
    client = http.InferenceServerClient(url)
    deadline = time.time() + READY_TIMEOUT_S
    try:
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"serve.triton exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if all(client.is_model_ready(name) for name in models):
                    return proc, url
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            time.sleep(0.5)
    finally:
        client.close()
    stop_local_triton(proc)
    raise RuntimeError(f"serve.triton was not ready within {READY_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")


def stop_local_triton(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
