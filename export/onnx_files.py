"""Where ONNX exports live and whether one is current, without torch.

The fp32 exports of the shipped models (weights/onnx/NAME.onnx, NAME_mc.onnx for MC-dropout models,
each with NAME.onnx.json) are committed, so a Space serves them on ONNX Runtime / OpenVINO with torch
absent. Each sidecar records the SHA-256 of the safetensors it was exported from; `stale_reason`
compares it with the current weights, and the fingerprint of the model's code (models/fingerprint.py)
with the current code, and `shipped_problems` lists every shipped export that is
missing or stale (CI's test and `python -m export onnx --check`). onnx_export.py writes these files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from common import paths
from models import REGISTRY, get_spec

from .artifacts import file_sha256, read_json

MIN_OPSET = 17
MC_GRAPH = "shared-trunk/1"  # bump when the MC graph layout changes: ensure_onnx re-exports older files
REGENERATE = "python -m export onnx --all"  # rebuilds every missing or stale shipped export (needs torch)


def onnx_path(name: str, out_dir: Optional[Path] = None, *, mc: bool = False, half: bool = False) -> Path:
    """Where the export of `name` lives: weights/onnx/NAME[_mc][_fp16].onnx by default."""
    suffix = "".join(["_mc"] * mc + ["_fp16"] * half)
    return Path(out_dir or paths.WEIGHTS_DIR / "onnx") / f"{name}{suffix}.onnx"


def low_precision_path(fp32_onnx: Path, precision: str) -> Path:
    """NAME.int8.onnx beside NAME.onnx; for bf16 (a compile hint, no file) the record NAME.bf16.json."""
    fp32_onnx = Path(fp32_onnx)
    suffix = ".int8.onnx" if precision == "int8" else f".{precision}.json"
    return fp32_onnx.with_name(fp32_onnx.stem + suffix)


def record_path(fp32_onnx: Path, precision: str) -> Path:
    """The JSON record of a precision: NAME.int8.onnx.json (the QDQ file's sidecar) or NAME.bf16.json."""
    path = low_precision_path(fp32_onnx, precision)
    return path.with_name(path.name + ".json") if precision == "int8" else path


def onnx_sidecar_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".json")


def read_onnx_record(path: Path) -> Optional[Dict[str, Any]]:
    return read_json(onnx_sidecar_path(path))


def stale_reason(out: Path, record: Optional[Dict[str, Any]], name: str, weights_sha: str,
                 code_sha: str) -> Optional[str]:
    """Why the export at `out` cannot be used for weights with SHA-256 `weights_sha`, built by code with
    fingerprint `code_sha` (ModelSpec.code_fingerprint); None: it is current."""
    if not out.exists():
        return "no ONNX file yet"
    if record is None:
        return "its sidecar is missing or unreadable"
    if record.get("model") != name:
        return f"it was exported from '{record.get('model')}'"
    if record.get("source", {}).get("sha256") != weights_sha:
        return "the weights changed since it was exported"
    if record.get("code_sha256") != code_sha:
        return "the model's code changed since it was exported"
    if record.get("sha256") != file_sha256(out):
        return "the ONNX file changed since its sidecar was written"
    if record.get("variant", "").startswith("mc") and record.get("mc_graph") != MC_GRAPH:
        return f"its MC graph layout is '{record.get('mc_graph')}', not the current '{MC_GRAPH}'"
    return None


def current_reason(name: str, weights: Path, out_dir: Optional[Path] = None, *, mc: bool = False,
                   half: bool = False) -> Tuple[Path, Optional[str]]:
    """(the export's path, why it is not current or None) for checkpoint `weights`."""
    out = onnx_path(name, out_dir, mc=mc, half=half)
    code_sha = get_spec(name).code_fingerprint(mc)
    return out, stale_reason(out, read_onnx_record(out), name, file_sha256(weights), code_sha)


def project_relative(path: Path) -> str:
    """`weights/onnx/x.onnx` for a file in the project (sidecars that do not name this machine's folders)."""
    path = Path(path).resolve()
    return str(path.relative_to(paths.PROJECT_ROOT)) if path.is_relative_to(paths.PROJECT_ROOT) else str(path)


def shipped_variants() -> List[Tuple[str, bool]]:
    """(name, mc) of every export that ships: each registered model with weights, plus its MC variant
    where it has MC dropout (the uncertainty map runs it)."""
    shipped = [spec for spec in REGISTRY.values() if spec.has_weights()]
    return [(s.name, False) for s in shipped] + [(s.name, True) for s in shipped if s.mc_dropout]


def shipped_problems() -> List[str]:
    """One line per shipped export that is missing or stale (empty: every one is current)."""
    problems = []
    for name, mc in shipped_variants():
        out, reason = current_reason(name, REGISTRY[name].weights_path, mc=mc)
        if reason is not None:
            problems.append(f"{project_relative(out)}: {reason}")
    return problems
