"""Run by tests/test_lean.py in a subprocess where `import torch` fails (a meta-path blocker on PYTHONPATH):
the app starts, every endpoint answers one request on its default path, and the serve CLIs run.
Prints one JSON object of what each step returned; exits non-zero on the first failure."""
from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clip(path: Path) -> Path:
    import cv2
    import numpy as np

    frame = cv2.imread(str(EXAMPLES / "frame_00010.jpg"))[:48, :64]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), 8, (64, 48))
    for i in range(4):
        writer.write(np.ascontiguousarray(np.roll(frame, 3 * i, axis=1)))
    writer.release()
    return path


def endpoints(client, tmp: Path) -> dict:
    from gradio_client import handle_file

    lr = handle_file(str(EXAMPLES / "sr_car_lr.png"))
    out = {}
    _, _, _, info = client.predict(lr, "flashsr", 2, 256, "auto", False, api_name="/upscale")
    out["upscale"] = info["selection"]
    _, summary, _ = client.predict([lr, handle_file(str(EXAMPLES / "sr_tents_lr.png"))], "flashsr", "2", 0,
                                   "auto", "png", 90, 0, api_name="/upscale_batch")
    out["upscale_batch"] = summary
    _, _, _, info = client.predict(handle_file(str(EXAMPLES / "colour_frame.png")), "colorize_lab", "auto",
                                   api_name="/colorize")
    out["colorize"] = info.get("selection") or info.get("backend")
    *_, details = client.predict(lr, "flashsr_x2", 4, "mc", "auto", api_name="/uncertainty")
    out["uncertainty"] = details["passes"]
    a, b = (handle_file(str(EXAMPLES / f"frame_0001{i}.jpg")) for i in (0, 1))
    frames, _ = client.predict(a, b, "×2", "flowinterp", "auto", api_name="/interpolate")
    out["interpolate"] = len(frames)
    _, _, details = client.predict(handle_file(str(_clip(tmp / "pan.webm"))), 1, "flashsr_x2", "auto", None,
                                   api_name="/video")
    out["video"] = details["frames_out"]
    _, _, rows = client.predict(["flashsr_x2"], ["onnx", "torch"], ["128"], 1, api_name="/benchmark")
    out["benchmark"] = {r["backend"]: r["skipped"] or r["median_ms"] for r in rows}
    return out


def clis(tmp: Path) -> dict:
    from serve import colorize, interpolate, sr, uncertainty, video

    src = str(EXAMPLES / "sr_car_lr.png")
    return {
        "serve.sr": sr.main([src, "--model", "flashsr_x2", "--out", str(tmp / "sr.png")]),
        "serve.colorize": colorize.main([str(EXAMPLES / "colour_frame.png"), "--out", str(tmp / "c.png")]),
        "serve.uncertainty": uncertainty.main([src, "--passes", "2", "--out", str(tmp / "u")]),
        "serve.interpolate": interpolate.main([str(EXAMPLES / "frame_00010.jpg"), str(EXAMPLES / "frame_00011.jpg"),
                                               "--out", str(tmp / "mid.png")]),
        "serve.video": video.main([str(tmp / "pan.webm"), "--sr", "flashsr_x2", "--out", str(tmp / "v.mp4")]),
    }


def main() -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        print("torch is importable: the blocker is not in place", file=sys.stderr)
        return 3
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from gradio_client import Client

    import app
    from ui.common import backend_choices

    report = {"backend_choices": backend_choices()}
    app.demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=_free_port(), quiet=True,
                    **app.launch_kwargs())
    with tempfile.TemporaryDirectory() as tmp:
        try:
            client = Client(app.demo.local_url, verbose=False, analytics_enabled=False, download_files=tmp)
            report["endpoints"] = endpoints(client, Path(tmp))
        finally:
            app.demo.close()
        report["clis"] = clis(Path(tmp))
    report["torch_loaded"] = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
