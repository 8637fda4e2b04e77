"""Checkpoints: `NAME.safetensors` (weights) + `NAME.json` (what they are).

The sidecar records the architecture, its constructor args, the training data, iterations and
evaluation metrics, plus the weights' SHA-256 so exports can say which file they came from.
Loading checks the sidecar against the expected architecture and the tensors against the
model, and fails with a one-paragraph message instead of a PyTorch shape dump.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

if TYPE_CHECKING:  # sidecars and hashes need no torch (serving from ONNX); weights do, imported where used
    import torch
    from torch import nn

FORMAT = "stsr-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not fit the model it is loaded into."""


def sidecar_path(weights_path: Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(weights_path: Path, model: nn.Module, *, arch: str, args: Dict[str, Any],
                    meta: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Write weights + sidecar atomically (tmp file then rename); returns the sidecar dict."""
    from safetensors.torch import save_file

    weights_path = Path(weights_path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = weights_path.with_suffix(".safetensors.tmp")
    save_file(state, str(tmp), metadata={"format": FORMAT, "arch": arch})
    tmp.replace(weights_path)
    info = {
        "format": FORMAT,
        "arch": arch,
        "args": args,
        "params": int(sum(p.numel() for p in model.parameters())),
        "sha256": file_sha256(weights_path),
        "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    info.update(meta or {})
    write_sidecar(weights_path, info)
    return info


def carried_meta(info: Dict[str, Any]) -> Dict[str, Any]:
    """The sidecar fields a rewrite of the checkpoint keeps (its `meta`): all but those save_checkpoint
    writes itself and the metrics, which described the weights before the rewrite."""
    own = ("format", "arch", "args", "params", "sha256", "saved", "metrics")
    return {k: v for k, v in info.items() if k not in own}


def write_sidecar(weights_path: Path, info: Dict[str, Any]) -> None:
    path = sidecar_path(weights_path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def read_sidecar(weights_path: Path) -> Dict[str, Any]:
    path = sidecar_path(weights_path)
    if not path.exists():
        raise CheckpointError(f"{path}: sidecar JSON missing "
                              "(every checkpoint needs NAME.json beside NAME.safetensors)")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: sidecar is not valid JSON ({exc})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT or "arch" not in info:
        raise CheckpointError(f"{path}: not a {FORMAT} sidecar")
    return info


def record_metrics(weights_path: Path, rows, keys) -> None:
    """Merge evaluation rows (one dict per benchmark set, with a 'set' key) into the sidecar's
    'metrics', keeping only `keys` of each row; other sets already recorded stay."""
    info = read_sidecar(weights_path)
    info.setdefault("metrics", {}).update({row["set"]: {k: row[k] for k in keys} for row in rows})
    write_sidecar(weights_path, info)


def read_weights(weights_path: Path) -> Dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_path = Path(weights_path)
    if not weights_path.exists():
        raise CheckpointError(f"{weights_path}: checkpoint not found")
    try:
        return load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights_path}: not a readable safetensors file ({exc})") from None


def load_state_into(model: nn.Module, state: Dict[str, torch.Tensor], source: str, arch: str = "") -> None:
    """load_state_dict(strict) with a readable summary of what does not fit."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}" for k in own
             if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensors (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
        if wrong:
            parts.append(f"{len(wrong)} with other shapes (e.g. {wrong[0]})")
        label = f" for architecture '{arch}'" if arch else ""
        raise CheckpointError(
            f"{source} does not fit {type(model).__name__}{label}: " + "; ".join(parts)
            + ". It was probably saved from another model or with other constructor arguments."
        )
    model.load_state_dict(state, strict=True)


def load_checkpoint(weights_path: Path,
                    expected_arch: Optional[str] = None) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Read and validate a checkpoint pair; returns (state_dict, sidecar)."""
    weights_path = Path(weights_path)
    info = read_sidecar(weights_path)
    if expected_arch is not None and info["arch"] != expected_arch:
        raise CheckpointError(
            f"{weights_path}: holds a '{info['arch']}' model, but '{expected_arch}' was expected"
        )
    return read_weights(weights_path), info
