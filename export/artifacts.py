"""What every exporter shares: the error type, checkpoint resolution and JSON sidecars.

Exports are derived files; each carries a sidecar saying what it was made from so a stale one
is rebuilt rather than trusted. All bad input surfaces as ExportError with the cause in the
message, which the CLI prints as one line.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

if TYPE_CHECKING:  # export/onnx_files.py reads sidecars through this module without torch
    from torch import nn

from models import CheckpointError, ModelSpec, get_spec, load_model
from models.checkpoint import file_sha256

__all__ = ["ExportError", "resolve_spec", "load_source_model", "file_sha256", "read_json", "write_json",
           "utc_now"]


class ExportError(RuntimeError):
    """An export cannot go ahead; the message names the cause (file, model, mismatch)."""


def resolve_spec(name: str) -> ModelSpec:
    try:
        return get_spec(name)
    except KeyError as exc:
        raise ExportError(exc.args[0]) from None


def load_source_model(spec: ModelSpec, weights_path: Optional[Path] = None) -> Tuple[nn.Module, Path, str]:
    """The model to export (eval mode), the checkpoint it came from and that file's SHA-256.

    models.load_model refuses a checkpoint of another architecture or with other constructor args
    (an x4 checkpoint under the x2 name), so a wrong file never gets exported under this name.
    """
    path = Path(weights_path) if weights_path else spec.weights_path
    try:
        model = load_model(spec.name, path)
    except CheckpointError as exc:
        raise ExportError(str(exc)) from None
    return model.eval(), path, file_sha256(path)


def read_json(path: Path) -> Optional[Dict[str, Any]]:
    """A sidecar's content, or None when it is missing or unreadable (callers then rebuild)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: Dict[str, Any]) -> None:
    """Write atomically so a reader never sees half a sidecar."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
