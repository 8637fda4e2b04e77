"""ONNX Runtime (CPU) against PyTorch on random inputs: the proof that an export is faithful.

Sizes include an odd one (37x53) because padding, Resize and PixelShuffle bugs hide at even
sizes, and one batch of 2 because a baked-in batch dimension only shows with N > 1.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from models import ModelSpec
from models.io import ModelIO

from .artifacts import ExportError

DEFAULT_SIZES: Tuple[Tuple[int, int], ...] = ((32, 32), (37, 53), (64, 48))
DEFAULT_ATOL = 1e-4


class ParityError(ExportError):
    """The exported graph and PyTorch disagree by more than the tolerance."""

    def __init__(self, message: str, errors: Dict[str, float]):
        super().__init__(message)
        self.errors = errors


def ort_session(onnx_path: Path):
    """A CPU ONNX Runtime session (imported here so the rest of export/ loads without it)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # parity reports its own errors; ORT warnings are noise here
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def run_torch(model: nn.Module, io: ModelIO, feeds: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    args = [torch.from_numpy(feeds[name]) for name in io.input_names]
    with torch.inference_mode():
        out = model(*args)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return {name: o.float().numpy() for name, o in zip(io.output_names, outs)}


def run_ort(session, feeds: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feeds))))


def max_abs_error(got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray]) -> float:
    """Largest difference over all outputs; a shape mismatch counts as infinite."""
    worst = 0.0
    for name, ref in want.items():
        if name not in got or got[name].shape != ref.shape:
            return float("inf")
        worst = max(worst, float(np.max(np.abs(got[name].astype(np.float32) - ref))))
    return worst


def default_batches(count: int, batch: int = 2) -> Tuple[int, ...]:
    """Batch 1 everywhere except the second size (the odd one by default), which gets `batch`."""
    return tuple(batch if i == 1 else 1 for i in range(count))


def raise_if_over(errors: Dict[str, float], atol: float, what: str) -> Dict[str, float]:
    bad = {k: v for k, v in errors.items() if not v <= atol}
    if bad:
        listing = ", ".join(f"{k}: {v:.3g}" for k, v in bad.items())
        raise ParityError(f"{what} differs from PyTorch by more than atol={atol:g} ({listing})", errors)
    return errors


def check_parity(onnx_path: Path, torch_model: nn.Module, spec: ModelSpec,
                 sizes: Sequence[Tuple[int, int]] = DEFAULT_SIZES, atol: float = DEFAULT_ATOL, *,
                 io: Optional[ModelIO] = None, batches: Optional[Iterable[int]] = None,
                 seed: int = 0) -> Dict[str, float]:
    """Max abs error per 'NxHxW' case; raises ParityError if any exceeds atol.

    `torch_model` is the module that was exported (the plain model, or a wrapper with `io`).
    """
    io = io or spec.io
    sizes = io.fit_sizes(sizes)
    batches = tuple(batches) if batches is not None else default_batches(len(sizes))
    if len(batches) != len(sizes):
        raise ValueError(f"{len(batches)} batch sizes for {len(sizes)} spatial sizes")
    session = ort_session(onnx_path)
    torch_model = torch_model.eval()
    errors: Dict[str, float] = {}
    for i, ((h, w), n) in enumerate(zip(sizes, batches)):
        feeds = io.random_inputs(n, h, w, seed=seed + i)
        errors[f"{n}x{h}x{w}"] = max_abs_error(run_ort(session, feeds), run_torch(torch_model, io, feeds))
    return raise_if_over(errors, atol, Path(onnx_path).name)


def format_table(rows: Sequence[Tuple[str, str, Dict[str, float], float]]) -> str:
    """rows: (model, variant, errors, atol) -> a fixed-width table for the CLI."""
    lines = [f"{'model':<16} {'variant':<8} {'input NxHxW':<12} {'max abs err':>12} {'atol':>8}  ok"]
    for model, variant, errors, atol in rows:
        for case, err in errors.items():
            ok = "yes" if err <= atol else "NO"
            lines.append(f"{model:<16} {variant:<8} {case:<12} {err:>12.3e} {atol:>8.0e}  {ok}")
    return "\n".join(lines)
