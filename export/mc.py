"""Exporting the Monte-Carlo dropout variant: masks are a graph input (models/mc_dropout.py).

The exported MC graph is deterministic: the caller draws K masks, the graph runs the one LR image
under each mask. FlashSR's forward_mc runs the trunk once and only the layers after dropout K times
(MC_GRAPH names this graph layout so stale exports get rebuilt).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence, Tuple

import onnx
from torch import nn

from models import ModelSpec
from models.io import ModelIO, mc_contract
from models.mc_wrapper import MCDropoutWrapper

from .artifacts import ExportError
from .onnx_files import MC_GRAPH  # noqa: F401 - re-exported: the name callers know from here
from .parity import DEFAULT_ATOL, DEFAULT_SIZES, check_parity, max_abs_error, ort_session, run_ort, run_torch

# ops that draw random numbers at run time; none may appear in an MC export
STOCHASTIC_OPS = frozenset({"Dropout", "Bernoulli", "RandomUniform", "RandomUniformLike", "RandomNormal",
                            "RandomNormalLike", "Multinomial"})



def mc_io(spec: ModelSpec, model: nn.Module) -> ModelIO:
    """The model's contract with the batch pinned to 1 and K ("samples") masks of the model's width added."""
    if not spec.mc_dropout:
        raise ExportError(f"'{spec.name}' takes no explicit dropout masks (mc_dropout=False); it has no MC export")
    try:
        return mc_contract(spec.io, int(model.mask_channels), float(model.dropout_p))
    except ValueError as exc:
        raise ExportError(f"'{spec.name}': {exc}") from None


def stochastic_nodes(model: onnx.ModelProto) -> Tuple[str, ...]:
    return tuple(sorted({n.op_type for n in model.graph.node if n.op_type in STOCHASTIC_OPS}))


def check_mc_parity(onnx_path: Path, wrapper: MCDropoutWrapper, spec: ModelSpec,
                    sizes: Sequence[Tuple[int, int]] = DEFAULT_SIZES, atol: float = DEFAULT_ATOL,
                    samples: int = 4) -> Tuple[Dict[str, float], float]:
    """(errors, mask_effect). Errors: same masks give the same K outputs in ORT and torch
    (a fresh mask set per size, K=2 once). mask_effect: how far two mask sets move the ORT
    output, checked against torch; it is 0 only for an untrained model whose dropout feeds a
    zero-initialised layer.
    """
    io = mc_io(spec, wrapper.model)
    batches = tuple(2 if i == 1 else samples for i in range(len(sizes)))
    errors = check_parity(onnx_path, wrapper, spec, sizes, atol, io=io, batches=batches)
    h, w = io.fit_sizes(sizes[:1])[0]
    session = ort_session(onnx_path)
    first, second = (io.random_inputs(samples, h, w, seed=s) for s in (100, 101))
    second[io.inputs[0].name] = first[io.inputs[0].name]  # same image, other masks
    effect = max_abs_error(run_ort(session, first), run_ort(session, second))
    torch_effect = max_abs_error(run_torch(wrapper, io, first), run_torch(wrapper, io, second))
    if abs(effect - torch_effect) > atol:
        raise ExportError(f"{Path(onnx_path).name}: masks move the output by {effect:.3g} in ONNX Runtime "
                          f"but {torch_effect:.3g} in PyTorch")
    return errors, effect
