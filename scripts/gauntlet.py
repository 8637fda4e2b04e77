"""The bad-input gauntlet: hostile files, hostile paths and parameter abuse against a live server.

    python scripts/gauntlet.py [--url URL] [--quick] [--json out.json]

Without --url it starts `python app.py` on a free loopback port (as scripts/load_test.py does) and
stops it at the end. Every case is one API call with a timeout; its outcome is one of
  ok             a valid input answered, and the answer checked (size, orientation) where it can be
  clear message  a bad input refused with a sentence that names the problem
  generic        refused, but only with "Internal error" or an empty message
  wrong output   a bad input answered, a valid one refused, or an answer that fails its check
  hang           no answer within the timeout
  crash          the server stopped answering
and a health check (a small good /upscale) runs after every 20 cases. Prints a table by category;
exit code 0 when every case is ok or a clear message. `--quick` runs the part CI runs (the file cases
on /upscale and /colorize, every path and parameter case, the small videos).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from gauntlet_files import Expect, image_files, video_files  # noqa: E402

OUTCOMES = ("ok", "clear message", "generic", "wrong output", "hang", "crash")
HEALTH_EVERY = 20
GOOD_IMAGE = ROOT / "examples" / "sr_tents_lr.png"


@dataclass
class Case:
    category: str
    name: str
    api_name: str
    args: List[Any]  # FILE / FILE2 placeholders are replaced by uploads
    expect: Expect
    files: List[Path] = field(default_factory=list)
    raw: bool = False  # send the payload as-is over HTTP (hostile paths), not through gradio_client
    timeout: float = 120.0


def full_arguments(api_name: str) -> List[Any]:
    """Every argument of a valid call (raw HTTP calls must send them all); FILE / FILE2 mark files."""
    return list({"/upscale": ["FILE", "flashsr", "2", 256, "auto", False, "png", 95, 0, "auto", 0.5],
                 "/upscale_batch": ["FILES", "flashsr", "2", 256, "auto", "png", 95, 0, "auto", 0.5],
                 "/colorize": ["FILE", None, "auto", "auto", [], 1.0],
                 "/uncertainty": ["FILE", "flashsr_x2", 4, "mc", "auto", "auto"],
                 "/interpolate": ["FILE", "FILE2", "×2", None, "auto", "auto"],
                 "/video": ["FILE", "1", "flashsr_x2", "auto", None, 0, "h264", -1, "yuv420p", "skip", "auto"],
                 "/colorize_video": ["FILE", None, [], False, "auto", 1.0],
                 "/benchmark": [["flashsr_x2"], ["onnx"], ["128"], 1, ["exact fp32"]]}[api_name])



def file_cases(folder: Path, endpoints: List[str]) -> List[Case]:
    cases = []
    for name, expect in image_files(folder / "images").items():
        for api_name in endpoints:
            files = [folder / "images" / name] * (2 if api_name == "/interpolate" else 1)
            small_for_uncertainty = api_name == "/uncertainty" and expect.upright and min(expect.upright) < 64
            cases.append(Case("image files", f"{name} -> {api_name}", api_name, full_arguments(api_name),
                              Expect("refuse") if small_for_uncertainty else expect, files))
    return cases


def video_cases(folder: Path) -> List[Case]:
    cases = []
    for name, expect in video_files(folder / "videos").items():
        args = full_arguments("/video")
        if name == "odd_size.mkv":
            args[1:3] = ["2", "none"]
        cases.append(Case("video files", name, "/video", args, expect, [folder / "videos" / name], timeout=300))
    return cases


def path_cases(folder: Path) -> List[Case]:
    """Server paths sent without Gradio's `meta` marker: refused, and the same words for all."""
    secret = folder / "secret.png"
    secret.write_bytes(GOOD_IMAGE.read_bytes())
    paths = {"an existing image": str(secret), "/etc/passwd": "/etc/passwd", "/proc/self/cmdline": "/proc/self/cmdline",
             "a folder": str(folder), "a missing file": str(folder / "missing.png"),
             "dot-dot": "/tmp/gradio/../../" + str(secret).lstrip("/")}
    cases = []
    for label, path in paths.items():
        for api_name in ("/upscale", "/colorize", "/uncertainty", "/interpolate", "/video", "/colorize_video"):
            args = full_arguments(api_name)
            args = [({"video": {"path": path}, "subtitles": None} if "video" in api_name else {"path": path})
                    if a == "FILE" else ("GOOD" if a == "FILE2" else a) for a in args]
            cases.append(Case("server paths", f"{label} -> {api_name}", api_name, args, Expect("refuse"), raw=True))
    return cases


PARAMETER_ABUSE = {  # api_name -> [(argument index, bad value), ...]; the rest of the call is valid
    "/upscale": [(1, "nope"), (1, 123), (1, None), (2, None), (2, "3"), (2, "x"), (2, True), (2, 2.5), (3, -1),
                 (3, 64), (3, "big"), (3, 99999), (3, None), (4, "quantum"), (4, 123), (5, "false"), (5, 1),
                 (5, None), (5, "true"), (6, "bmp"), (6, 7), (7, 0), (7, 101), (7, "high"), (8, -1), (8, 17),
                 (8, "huge"), (8, "nan"), (9, "fp8"), (9, 16), (10, -0.1), (10, 1.5), (10, "nan"),
                 (10, "strong"), (10, None)],
    "/colorize": [(1, "nope"), (1, 123), (2, "quantum"), (2, ["onnx"]), (3, "fastest"), (4, "red"),
                  (4, [[99999, 0, "#ff0000"]]), (4, [[-1, 0, "#ff0000"]]), (4, [[0, 0, "#zzzzzz"]]),
                  (4, [[0, 0, [300, 0, 0]]]), (4, [[0, 0, "#ff0000"]] * 5000), (4, [[0, "nan", "#ff0000"]]),
                  (5, -0.5), (5, 2.6), (5, "nan"), (5, "vivid"), (5, True), (5, [1])],
    "/uncertainty": [(1, "nope"), (1, "flashsr_x4x"), (2, 0), (2, 1), (2, 129), (2, "many"), (2, None), (2, 2.5),
                     (3, "bad"), (3, 7), (4, "quantum")],
    "/interpolate": [(2, "×3"), (2, 3), (2, "8"), (2, None), (2, 1), (3, "nope"), (4, "quantum")],
    "/video": [(1, 0), (1, 3), (1, "1000"), (1, None), (1, -2), (2, "nope"), (2, 7), (3, "quantum"), (4, "nope"),
               (5, 1000), (5, -1), (5, "fast"), (6, "divx"), (6, 264), (7, 99), (7, "crisp"), (8, "rgb48"),
               (9, "maybe")],
    "/colorize_video": [(1, "nope"), (1, 123), (2, "red"), (2, [[99999, 0, "#ff0000"]]), (2, [[0, 0, "#zzzzzz"]]),
                        (3, "false"), (3, 1), (3, None), (4, "quantum"), (5, 3), (5, "loud")],
    "/benchmark": [(0, []), (0, ["nope"]), (0, "flashsr_x4x"), (1, ["quantum"]), (1, []), (2, ["9999"]), (2, []),
                   (3, 0), (3, 21), (3, "x"), (3, None), (3, 2.5), (4, ["fp8"]), (4, "fast")],
}


def parameter_cases() -> List[Case]:
    valid = {e: full_arguments(e) for e in PARAMETER_ABUSE}
    cases = []
    for api_name, abuses in PARAMETER_ABUSE.items():
        for index, value in abuses:
            args = list(valid[api_name])
            args[index] = value
            files = [ROOT / "examples" / ("clip_cdfi.webm" if "video" in api_name else "sr_tents_lr.png")]
            files = files * (2 if api_name == "/interpolate" else 1)
            cases.append(Case("parameters", f"{api_name} arg {index} = {value!r}", api_name, args, Expect("refuse"),
                              files if api_name != "/benchmark" else []))
    return cases


def build_cases(folder: Path, quick: bool) -> List[Case]:
    endpoints = ["/upscale", "/colorize"] if quick else ["/upscale", "/colorize", "/uncertainty", "/interpolate"]
    return file_cases(folder, endpoints) + path_cases(folder) + parameter_cases() + video_cases(folder)


# --- running -----------------------------------------------------------------------------------------

def _uploads(case: Case) -> List[Any]:
    from gradio_client import handle_file

    files = iter(case.files)
    args = []
    for a in case.args:
        if a in ("FILE", "FILE2"):
            args.append(handle_file(str(next(files))))
        else:
            args.append(a)
    return args


def raw_call(url: str, api_name: str, args: List[Any], timeout: float) -> tuple:
    """POST as-is; ('error', message) or ('ok', data)."""
    import httpx

    with httpx.Client(timeout=timeout) as http:
        good = http.post(f"{url}/gradio_api/upload", files={"files": GOOD_IMAGE.open("rb")}).json()[0]
        args = [{"path": good, "meta": {"_type": "gradio.FileData"}} if a == "GOOD" else a for a in args]
        event = http.post(f"{url}/gradio_api/call{api_name}", json={"data": args}).json()["event_id"]
        stream = http.get(f"{url}/gradio_api/call{api_name}/{event}").text
    if "event: error" in stream:
        data = stream.split("event: error", 1)[1].split("data:", 1)[1].strip().splitlines()[0]
        try:
            return "error", str(json.loads(data).get("error") or "")
        except (ValueError, AttributeError):
            return "error", data
    return "ok", stream


def classify_refusal(message: str) -> str:
    text = (message or "").strip()
    return "generic" if not text or "Internal error" in text or text in ("None", "null", "Error") else "clear message"


def check_answer(case: Case, result: Any) -> Optional[str]:
    """None when the answer looks right, else what is wrong."""
    from PIL import Image

    if case.expect.upright is None:
        return None
    want_w, want_h = case.expect.upright
    if case.api_name == "/upscale":
        (_, after), _, _, info = result
        got = Image.open(after).size
        return None if got == (want_w * 2, want_h * 2) else f"output {got}, expected {(want_w * 2, want_h * 2)}"
    if case.api_name == "/colorize":
        (_, colour), _, _, _ = result
        got = Image.open(colour).size
        return None if got == (want_w, want_h) else f"output {got}, expected {(want_w, want_h)}"
    if case.api_name == "/video":
        import av

        path, _, details = result
        with av.open(path) as container:
            stream = container.streams.video[0]
            got = (stream.codec_context.width, stream.codec_context.height)
        reported = tuple(details.get("size", ()))
        if got != (want_w, want_h) or reported != got:
            return f"file {got}, reported {reported}, expected {(want_w, want_h)}"
    return None


def run_case(client, url: str, case: Case) -> tuple:
    from gradio_client.exceptions import AppError

    started = time.perf_counter()
    try:
        if case.raw:
            status, payload = raw_call(url, case.api_name, case.args, case.timeout)
            outcome = classify_refusal(payload) if status == "error" else "wrong output"
            return outcome, payload[:200], time.perf_counter() - started
        job = client.submit(*_uploads(case), api_name=case.api_name)
        result = job.result(timeout=case.timeout)
    except AppError as exc:
        outcome = classify_refusal(str(exc)) if case.expect.outcome == "refuse" else "wrong output"
        return outcome, str(exc)[:200], time.perf_counter() - started
    except TimeoutError:
        return "hang", f"no answer in {case.timeout:.0f} s", time.perf_counter() - started
    except Exception as exc:  # noqa: BLE001 - a dead server or a protocol failure
        return "crash", f"{type(exc).__name__}: {exc}"[:200], time.perf_counter() - started
    if case.expect.outcome == "refuse":
        return "wrong output", "accepted a bad input", time.perf_counter() - started
    problem = check_answer(case, result)
    return ("wrong output", problem) if problem else ("ok", "answered"), time.perf_counter() - started


def _flatten(outcome) -> tuple:
    return outcome if len(outcome) == 3 else (*outcome[0], outcome[1])


def healthy(client) -> bool:
    from gradio_client import handle_file

    try:
        client.predict(handle_file(str(GOOD_IMAGE)), "flashsr", 2, 256, "auto", False, api_name="/upscale")
        return True
    except Exception:  # noqa: BLE001
        return False


def run(url: str, cases: List[Case], log: Callable[[str], None] = print) -> List[dict]:
    from gradio_client import Client

    client = Client(url, verbose=False, analytics_enabled=False)
    rows = []
    for i, case in enumerate(cases, 1):
        outcome, detail, seconds = _flatten(run_case(client, url, case))
        rows.append({"category": case.category, "case": case.name, "outcome": outcome, "detail": detail,
                     "seconds": round(seconds, 2)})
        if outcome not in ("ok", "clear message"):
            log(f"[{i}/{len(cases)}] {outcome}: {case.name}: {detail}")
        if i % HEALTH_EVERY == 0 and not healthy(client):
            rows.append({"category": "health", "case": f"after case {i}", "outcome": "crash", "detail": "no answer",
                         "seconds": 0})
            log(f"health check failed after case {i}")
    ok = healthy(client)
    rows.append({"category": "health", "case": "final", "outcome": "ok" if ok else "crash", "detail": "", "seconds": 0})
    return rows


def table(rows: List[dict]) -> str:
    counts = defaultdict(Counter)
    for row in rows:
        counts[row["category"]][row["outcome"]] += 1
    lines = ["| category | cases | " + " | ".join(OUTCOMES) + " |", "|---|---|" + "---|" * len(OUTCOMES)]
    for category, counter in counts.items():
        cells = " | ".join(str(counter[o]) for o in OUTCOMES)
        lines.append(f"| {category} | {sum(counter.values())} | {cells} |")
    total = Counter(row["outcome"] for row in rows)
    lines.append(f"| **all** | {len(rows)} | " + " | ".join(str(total[o]) for o in OUTCOMES) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running app; default: start app.py on a free loopback port")
    parser.add_argument("--quick", action="store_true", help="the CI subset")
    parser.add_argument("--json", type=Path, help="write every case's row here")
    args = parser.parse_args()
    from load_test import start_server, stop_server

    with tempfile.TemporaryDirectory(prefix="gauntlet-") as tmp:
        cases = build_cases(Path(tmp), args.quick)
        proc = None
        url = args.url
        if not url:
            proc, url = start_server(Path(tmp) / "server.log")
        try:
            started = time.perf_counter()
            rows = run(url, cases)
        finally:
            if proc is not None:
                stop_server(proc)
    print(table(rows))
    print(f"{len(rows)} rows in {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(r["outcome"] in ("ok", "clear message") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
