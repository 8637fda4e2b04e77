"""Per-task tensor contracts for export: names, symbolic shapes and random example inputs.

Everything downstream (ONNX dynamic axes, parity inputs, TensorRT profiles, Triton dims) is
derived from one ExportIO, so a new task only has to describe its tensors here. A dimension
is either a fixed int or a symbol; the symbols in DIM_SYMBOLS map onto the (N, H, W) that
callers ask for, any other symbol (e.g. "out_height") is only ever an output dimension.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from models import ModelSpec

Dim = Union[int, str]
Sampler = Callable[[Tuple[int, ...], np.random.Generator], np.ndarray]

# symbol -> index into the (n, h, w) triple a caller picks; "samples" is the MC variant's batch
DIM_SYMBOLS = {"batch": 0, "samples": 0, "height": 1, "width": 2}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: Tuple[Dim, ...]
    dtype: str = "float32"
    layout: str = "NCHW"
    sampler: Optional[Sampler] = field(default=None, compare=False, repr=False)  # default: U[0,1)

    @property
    def dynamic_axes(self) -> Dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}

    def concrete_shape(self, n: int, h: int, w: int) -> Tuple[int, ...]:
        """The shape at batch n and spatial size h x w (inputs only: all symbols must be known)."""
        picks = (n, h, w)
        try:
            return tuple(d if isinstance(d, int) else picks[DIM_SYMBOLS[d]] for d in self.shape)
        except KeyError as exc:
            raise ValueError(f"tensor '{self.name}': dimension {exc.args[0]!r} is not an input symbol") from None

    def describe(self) -> Dict[str, object]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "layout": self.layout}


@dataclass(frozen=True)
class ExportIO:
    inputs: Tuple[TensorSpec, ...]
    outputs: Tuple[TensorSpec, ...]

    @property
    def input_names(self) -> Tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> Tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def dynamic_axes(self) -> Dict[str, Dict[int, str]]:
        return {t.name: t.dynamic_axes for t in self.inputs + self.outputs if t.dynamic_axes}

    def random_inputs(self, n: int, h: int, w: int, seed: int = 0) -> Dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        feeds = {}
        for t in self.inputs:
            shape = t.concrete_shape(n, h, w)
            sample = t.sampler(shape, rng) if t.sampler else rng.random(shape, dtype=np.float32)
            feeds[t.name] = np.ascontiguousarray(sample, dtype=t.dtype)
        return feeds

    def example_args(self, n: int = 1, h: int = 32, w: int = 32, seed: int = 0) -> Tuple[torch.Tensor, ...]:
        """Positional tensors for torch.onnx.export, in input order."""
        feeds = self.random_inputs(n, h, w, seed)
        return tuple(torch.from_numpy(feeds[name]) for name in self.input_names)

    def describe(self) -> Dict[str, object]:
        return {"inputs": [t.describe() for t in self.inputs], "outputs": [t.describe() for t in self.outputs]}


def _sr_io(spec: ModelSpec) -> ExportIO:
    """LR (N,C,H,W) -> SR; strength models take a denoise strength (N,1) in [0,1] as a second input."""
    io = spec.io_spec()
    strength = (TensorSpec("strength", ("batch", 1), layout="N1",
                           sampler=lambda shape, rng: rng.uniform(0, 1, shape).astype(np.float32)),
                ) if spec.strength_input else ()
    return ExportIO(
        inputs=(TensorSpec(io["input"]["name"], ("batch", spec.in_channels, "height", "width")),) + strength,
        outputs=(TensorSpec(io["output"]["name"], ("batch", spec.out_channels, "out_height", "out_width")),),
    )


def _colorize_io(spec: ModelSpec) -> ExportIO:
    """Grey L/100 (N,1,H,W) -> RGB (N,3,H,W), same size; the Lab->RGB conversion is inside the graph."""
    io = spec.io_spec()
    return ExportIO(
        inputs=(TensorSpec(io["input"]["name"], ("batch", spec.in_channels, "height", "width")),),
        outputs=(TensorSpec(io["output"]["name"], ("batch", spec.out_channels, "height", "width")),),
    )


def _not_yet(task: str) -> Callable[[ModelSpec], ExportIO]:
    def build(spec: ModelSpec) -> ExportIO:
        raise NotImplementedError(f"export of '{task}' models is not implemented yet ({spec.name})")
    return build


def _interpolate_io(spec: ModelSpec) -> ExportIO:
    """Two frames (N,C,H,W) and a timestep (N,1,1,1) in (0,1) -> the frame at t (N,C,H,W)."""
    frame = ("batch", spec.in_channels, "height", "width")
    timestep = TensorSpec("t", ("batch", 1, 1, 1), layout="N111",
                          sampler=lambda shape, rng: rng.uniform(0.05, 0.95, shape).astype(np.float32))
    return ExportIO(inputs=(TensorSpec("frame0", frame), TensorSpec("frame1", frame), timestep),
                    outputs=(TensorSpec("frame", frame),))


# One entry per registry task. 'interpolate' two frames ("batch", 3, "height", "width") plus a timestep
# ("batch", 1, 1, 1) with a U[0,1) sampler -- describe them here when those models land.
TASK_IO: Dict[str, Callable[[ModelSpec], ExportIO]] = {
    "sr": _sr_io,
    "colorize": _colorize_io,
    "interpolate": _interpolate_io,
}


def task_io(spec: ModelSpec) -> ExportIO:
    if spec.task not in TASK_IO:
        raise NotImplementedError(f"no export contract for task '{spec.task}' ({spec.name})")
    return TASK_IO[spec.task](spec)


def fit_sizes(sizes: Sequence[Tuple[int, int]], multiple: int) -> Tuple[Tuple[int, int], ...]:
    """Round test sizes up to the model's pad multiple (odd sizes stay odd when multiple is 1)."""
    up = lambda v: -(-v // multiple) * multiple  # noqa: E731
    return tuple((up(h), up(w)) for h, w in sizes)
