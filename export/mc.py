"""Portable Monte-Carlo dropout: the dropout masks become a graph input.

ONNX Runtime and TensorRT either drop Dropout at inference or have no RNG at all, so the
exported MC graph is deterministic: the caller draws K masks (sample_masks), the graph runs
the one LR image under each mask, and the K outputs give the mean and the per-pixel spread. Same masks, same output, on every runtime.

Everything before the dropout layer does not depend on the mask, so running it K times is
waste (for FlashSR ~99% of a pass). A model that can split itself there provides
`forward_mc(lr 1xCxHxW, masks KxM)`; the wrapper then runs the trunk once and only the layers
after dropout K times (MC_GRAPH names this graph layout so stale exports get rebuilt).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np
import onnx
import torch
from torch import nn

from models import ModelSpec

from .artifacts import ExportError
from .parity import (DEFAULT_ATOL, DEFAULT_SIZES, check_parity, max_abs_error, ort_session, run_ort,
                     run_torch)
from .tasks import ExportIO, TensorSpec, fit_sizes, task_io

MASKS_INPUT = "masks"
# ops that draw random numbers at run time; none may appear in an MC export
STOCHASTIC_OPS = frozenset({"Dropout", "Bernoulli", "RandomUniform", "RandomUniformLike", "RandomNormal",
                            "RandomNormalLike", "Multinomial"})


def sample_masks(k: int, channels: int, p: float, seed: int) -> np.ndarray:
    """K channel masks: each entry kept with probability 1-p and scaled by 1/(1-p) (float32, K x C)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), not {p}")
    keep = np.random.default_rng(seed).random((k, channels)) >= p
    return (keep / (1.0 - p)).astype(np.float32)


MC_GRAPH = "shared-trunk/1"  # bump when the MC graph layout changes: ensure_onnx re-exports older files


class MCDropoutWrapper(nn.Module):
    """(lr 1xCxHxW, masks KxM) -> K outputs: the model run on lr once per mask.

    Uses the model's `forward_mc` (trunk once, layers after dropout K times) when it has one,
    else runs the whole model on K copies of lr.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        if not hasattr(model, "mask_channels"):
            raise ExportError(f"{type(model).__name__} takes no explicit dropout masks; it has no MC export")
        self.model = model

    @property
    def shares_trunk(self) -> bool:
        return hasattr(self.model, "forward_mc")

    def forward(self, lr: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        if hasattr(self.model, "forward_mc"):
            return self.model.forward_mc(lr, masks)
        return self.model(lr.expand(masks.shape[0], -1, -1, -1), dropout_masks=masks)


def mc_io(spec: ModelSpec, model: nn.Module) -> ExportIO:
    """The task's contract with the batch pinned to 1 and K ("samples") masks added."""
    base = task_io(spec)
    if len(base.inputs) != 1:
        raise ExportError(f"MC export supports single-input models; '{spec.name}' has {len(base.inputs)}")
    image = base.inputs[0]
    channels = int(model.mask_channels)
    p = float(getattr(model, "dropout_p", 0.0))
    masks = TensorSpec(MASKS_INPUT, ("samples", channels), layout="KC",
                       sampler=lambda shape, rng: sample_masks(shape[0], shape[1], p, int(rng.integers(2**31))))
    outputs = tuple(TensorSpec(o.name, ("samples",) + o.shape[1:], o.dtype, o.layout) for o in base.outputs)
    return ExportIO(inputs=(TensorSpec(image.name, (1,) + image.shape[1:], image.dtype, image.layout), masks),
                    outputs=outputs)


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
    h, w = fit_sizes(sizes[:1], spec.pad_multiple)[0]
    session = ort_session(onnx_path)
    first, second = (io.random_inputs(samples, h, w, seed=s) for s in (100, 101))
    second[io.inputs[0].name] = first[io.inputs[0].name]  # same image, other masks
    effect = max_abs_error(run_ort(session, first), run_ort(session, second))
    torch_effect = max_abs_error(run_torch(wrapper, io, first), run_torch(wrapper, io, second))
    if abs(effect - torch_effect) > atol:
        raise ExportError(f"{Path(onnx_path).name}: masks move the output by {effect:.3g} in ONNX Runtime "
                          f"but {torch_effect:.3g} in PyTorch")
    return errors, effect
