"""Numeric precision as the user's choice: exact fp32, fast bf16, fastest int8, or auto.

Which runtime runs which precision on the CPU:
    fp32  every backend (the reference; ONNX Runtime, OpenVINO and PyTorch agree to ~1e-5)
    bf16  OpenVINO only (INFERENCE_PRECISION_HINT=bf16; needs a CPU with AVX512-BF16 or AMX)
    int8  ONNX Runtime and OpenVINO, on the static QDQ file `python -m export int8` writes
GPU kinds keep their own fp16 switch (`fp16=True`); their precision option is fp32.

`auto` never guesses about quality: it only picks a lower precision whose PSNR change was MEASURED
on held-out training images (the records `python -m export int8` writes beside the ONNX file) and is
within AUTO_MAX_LOSS_DB; among those it takes the first in AUTO_ORDER (fastest first, as measured
by serve.bench on this project's CPU; see README "CPU speed").
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from common.cpu import has_int8_dot_product

PRECISIONS = ("fp32", "bf16", "int8", "auto")
LABELS = {"exact fp32": "fp32", "fast bf16": "bf16", "fastest int8": "int8", "auto": "auto"}
AUTO_MAX_LOSS_DB = 0.05  # auto accepts a measured PSNR drop up to this
INT8_MAX_LOSS_DB = 0.1  # export refuses an int8 model that loses more than this
RUNTIME_OF_KIND = {"onnx-cpu": "onnxruntime", "onnx": "onnxruntime", "openvino-cpu": "openvino"}
# (kind, precision), fastest first on CPU; GPU kinds (fp32 / their fp16 flag) go before all of these.
AUTO_ORDER: Tuple[Tuple[str, str], ...] = (
    ("openvino-cpu", "int8"), ("onnx-cpu", "int8"), ("openvino-cpu", "bf16"),
    ("onnx-cpu", "fp32"), ("openvino-cpu", "fp32"), ("torch-cpu", "fp32"),
)
# which precisions each concrete kind can run (others raise BackendUnavailable with this table's reason)
SUPPORTED = {"openvino-cpu": ("fp32", "bf16", "int8"), "onnx-cpu": ("fp32", "int8"), "onnx": ("fp32", "int8"),
             "torch-cpu": ("fp32",), "torch-cuda": ("fp32",), "onnx-gpu": ("fp32",), "trt": ("fp32",)}


def parse_precision(value: Optional[str]) -> str:
    """'exact fp32' / 'fp32' / None -> 'fp32'; likewise bf16, int8, auto. Raises ValueError otherwise."""
    if value is None:
        return "fp32"
    text = str(value).strip().lower()
    text = LABELS.get(text, text)
    if text not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(list(LABELS))} (or {', '.join(PRECISIONS)}), "
                         f"not '{value}'")
    return text


def low_precision_path(fp32_onnx: Path, precision: str) -> Path:
    """NAME.int8.onnx beside NAME.onnx (the QDQ model); for bf16 the record NAME.bf16.json (export.onnx_files)."""
    from export.onnx_files import low_precision_path as path_for

    return path_for(fp32_onnx, precision)


def record_path(fp32_onnx: Path, precision: str) -> Path:
    """The JSON record of a precision: NAME.int8.onnx.json (the QDQ file's sidecar) or NAME.bf16.json."""
    from export.onnx_files import record_path as path_for

    return path_for(fp32_onnx, precision)


def read_record(fp32_onnx: Path, precision: str) -> Tuple[Optional[Dict[str, Any]], str]:
    """(record, '') when a current record exists, else (None, why not) — stale records count as missing."""
    import json

    from models.checkpoint import file_sha256

    path = record_path(fp32_onnx, precision)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        model = Path(fp32_onnx).stem.removesuffix("_mc")
        task = _task_of(model)
        if task not in (None, "sr"):  # export int8 refuses them: saying "run it" would send the user in a circle
            return None, f"{precision} is measured for SR models only; {model} ({task}) runs in fp32"
        return None, (f"no measured {precision} quality for {Path(fp32_onnx).name} "
                      f"(run `python -m export int8 --model {model}`)")
    if not Path(fp32_onnx).is_file() or record.get("source_onnx_sha256") != file_sha256(fp32_onnx):
        return None, f"{path.name} was measured on another export of the model (re-run `python -m export int8`)"
    return record, ""


def _task_of(model: str) -> Optional[str]:
    """The registry task of an export's model name, or None for a name the registry does not know."""
    from models import get_spec

    try:
        return get_spec(model).task
    except KeyError:
        return None


def measured_loss(fp32_onnx: Path, kind: str, precision: str) -> Tuple[Optional[float], str]:
    """(PSNR loss in dB >= 0 or None, explanation) of `precision` on `kind`, from the records; fp32 is 0."""
    if precision == "fp32":
        return 0.0, "exact"
    record, why = read_record(fp32_onnx, precision)
    if record is None:
        return None, why
    runtime = RUNTIME_OF_KIND.get(kind, kind)
    if record.get("refused"):
        return None, f"{precision} was refused at export: {record.get('reason', '')}"
    if precision == "int8" and not (record.get("calibration") or {}).get("reduce_range") and not has_int8_dot_product():
        return None, ("this int8 file has full 8-bit weights, which saturate on a CPU without VNNI/AMX like this "
                      "one (its measured quality does not hold here); re-run `python -m export int8`")
    change = (record.get("psnr_change_db") or {}).get(runtime)
    if change is None:
        return None, f"{precision} quality was not measured on {runtime}"
    return max(-float(change), 0.0), f"{change:+.3f} dB Y-PSNR on {record.get('held_out', {}).get('count', '?')} " \
                                     f"held-out training crops"


def check_supported(kind: str, precision: str) -> Optional[str]:
    """None when `kind` runs `precision`, else the reason it does not."""
    allowed = SUPPORTED.get(kind, ("fp32",))
    if precision in allowed:
        return None
    runners = [k for k, p in SUPPORTED.items() if precision in p and k != "onnx"]
    return f"{kind} runs {'/'.join(allowed)} only; {precision} runs on {', '.join(runners)}"


def auto_candidates(kinds: List[str]) -> List[Tuple[str, str]]:
    """(kind, precision) pairs auto tries, fastest first, restricted to `kinds` (GPU kinds first, fp32)."""
    gpu = [(k, "fp32") for k in kinds if k in ("trt", "onnx-gpu", "torch-cuda")]
    return gpu + [(k, p) for k, p in AUTO_ORDER if k in kinds]


__all__ = ["PRECISIONS", "LABELS", "AUTO_MAX_LOSS_DB", "INT8_MAX_LOSS_DB", "AUTO_ORDER", "parse_precision",
           "low_precision_path", "record_path", "read_record", "measured_loss", "check_supported",
           "auto_candidates"]
