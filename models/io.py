"""The tensor contract of every model, stated once (the way spandrel's ImageModelDescriptor does).

A model's `ModelIO` names its input and output tensors, their shapes (ints or symbols), dtype,
layout and value range, and the spatial rules (pad multiple, minimum size). Export derives ONNX
names and dynamic axes, parity inputs, TensorRT profiles and Triton dims from it; serving checks
requests, runtimes and graphs against it; the tiler pads to its multiple; evaluation feeds models
through it. Torch modules take the inputs positionally, in contract order.

Shape symbols in DIM_SYMBOLS map onto the (N, H, W) a caller asks for; any other symbol (e.g.
"out_height", "mask_channels") is only ever an output or a not-yet-known dimension.

Adding an optional per-image scalar input (e.g. a denoise `strength`, shape [N,1]) is one field:
ModelSpec(..., scalar_inputs=("strength",)) puts it after the image inputs everywhere. Scalars are in
[0, 1] except those named in SCALAR_RANGES (the colorizers' `vividness`, a multiplier of their colour).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

Dim = Union[int, str]
Sampler = Callable[[Tuple[int, ...], np.random.Generator], np.ndarray]

# symbol -> index into the (n, h, w) triple a caller picks; "samples" is the MC variant's batch (K)
DIM_SYMBOLS = {"batch": 0, "samples": 0, "height": 1, "width": 2}

# tensor names used across export, serve and evaluate
FRAME0, FRAME1, TIMESTEP, FRAME_OUT = "frame0", "frame1", "t", "frame"
# one time step of a recurrent video SR model (models/vsr.py): (lr, prev_lr, hidden) -> (sr, hidden_out)
LR, PREV_LR, HIDDEN, SR, HIDDEN_OUT = "lr", "prev_lr", "hidden", "sr", "hidden_out"
HINT_AB, HINT_MASK = "hint_ab", "hint_mask"  # colour hints of hint colorizers (models/colorize_hint.py)
MASKS_INPUT = "masks"  # the Monte-Carlo dropout variant's extra input (models/mc_dropout.py)
IMAGE_NAMES = {"sr": ("lr", "sr"), "colorize": ("grey", "rgb")}  # (input, output) per single-image task
# The colorizers' colour strength: their own chroma (a, b) times this, on top of the calibrated chroma_gain
# (1 = the calibrated, most accurate colour; 0 = none but the hints'; 2.5 = colorize_hint_cls's own colour
# before its 0.4 gain). The exception to scalars in [0, 1]: a multiplier reads better than a remapped 0..1.
VIVIDNESS, DEFAULT_VIVIDNESS, MAX_VIVIDNESS = "vividness", 1.0, 2.5
SCALAR_RANGES = {VIVIDNESS: (0.0, MAX_VIVIDNESS)}


def _timestep_sampler(shape, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.05, 0.95, shape).astype(np.float32)


def _hint_mask_sampler(shape, rng: np.random.Generator) -> np.ndarray:
    return (rng.random(shape) < 0.02).astype(np.float32)  # sparse, like real hints


def _hint_ab_sampler(shape, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-0.8, 0.8, shape).astype(np.float32)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: Tuple[Dim, ...]
    dtype: str = "float32"
    layout: str = "NCHW"  # "NCHW" image, "N111" per-image timestep, "N1" per-image scalar, "KC" masks
    value_range: Optional[Tuple[float, float]] = (0.0, 1.0)
    scale: int = 1  # image outputs: spatial size = the image inputs' size * scale
    sampler: Optional[Sampler] = field(default=None, compare=False, repr=False)  # random inputs; default U[0,1)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_image(self) -> bool:
        return self.layout == "NCHW"

    @property
    def channels(self) -> Optional[int]:
        """Channel count of an image tensor (None when not an image or not fixed)."""
        return self.shape[1] if self.is_image and isinstance(self.shape[1], int) else None

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
        """What export sidecars record (name, shape, dtype, layout)."""
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "layout": self.layout}

    def shape_text(self) -> str:
        """`lr[N,3,H,W]` style, for error messages."""
        if not self.is_image:
            return f"{self.name}[rank {self.rank}]"
        return f"{self.name}[N,{self.channels or 'C'},H,W]"


def hint_tensors() -> Tuple[TensorSpec, TensorSpec]:
    """The two hint inputs. The exception to [0,1]: hint_ab is a, b / AB_RANGE (110), in [-1, 1]; hint_mask
    is 1 where a hint is given. Zero hints are automatic mode. NCHW at the grey input's size (padded with it)."""
    return (TensorSpec(HINT_AB, ("batch", 2, "height", "width"), value_range=(-1.0, 1.0), sampler=_hint_ab_sampler),
            TensorSpec(HINT_MASK, ("batch", 1, "height", "width"), sampler=_hint_mask_sampler))


@dataclass(frozen=True)
class ModelIO:
    inputs: Tuple[TensorSpec, ...]
    outputs: Tuple[TensorSpec, ...]
    pad_multiple: int = 1  # image inputs' H and W must be multiples of this (serving pads)
    min_size: int = 1  # smallest image side the model takes

    @property
    def input_names(self) -> Tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> Tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    @property
    def image_inputs(self) -> Tuple[TensorSpec, ...]:
        return tuple(t for t in self.inputs if t.is_image)

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

    def example_args(self, n: int = 1, h: int = 32, w: int = 32, seed: int = 0) -> tuple:
        """Positional torch tensors (for torch.onnx.export), in input order."""
        import torch

        feeds = self.random_inputs(n, h, w, seed)
        return tuple(torch.from_numpy(feeds[name]) for name in self.input_names)

    def describe(self) -> Dict[str, object]:
        return {"inputs": [t.describe() for t in self.inputs], "outputs": [t.describe() for t in self.outputs]}

    def fit_sizes(self, sizes: Sequence[Tuple[int, int]]) -> Tuple[Tuple[int, int], ...]:
        """Round test sizes up to the pad multiple (odd sizes stay odd when it is 1)."""
        m = self.pad_multiple
        return tuple((-(-h // m) * m, -(-w // m) * m) for h, w in sizes)


def image(name: str, channels: int, *, scale: int = 1, batch: Dim = "batch") -> TensorSpec:
    """An NCHW float image in [0, 1]; outputs at `scale` > 1 get their own spatial symbols."""
    spatial = ("out_height", "out_width") if scale != 1 else ("height", "width")
    return TensorSpec(name, (batch, channels, *spatial), scale=scale)


def scalar(name: str) -> TensorSpec:
    """A per-image control, shape [N, 1], in [0, 1] or its SCALAR_RANGES range (random inputs span it)."""
    if name not in SCALAR_RANGES:
        return TensorSpec(name, ("batch", 1), layout="N1")
    low, high = SCALAR_RANGES[name]
    return TensorSpec(name, ("batch", 1), layout="N1", value_range=(low, high),
                      sampler=lambda shape, rng: rng.uniform(low, high, shape).astype(np.float32))


def contract(spec) -> ModelIO:
    """The ModelIO of a ModelSpec (models/registry.py); what the spec declares decides every tensor."""
    if spec.recurrent_hidden:  # video SR step: the hidden features are LR-sized, unbounded floats
        hidden = TensorSpec(HIDDEN, ("batch", spec.recurrent_hidden, "height", "width"), value_range=None)
        inputs = (image(LR, spec.in_channels), image(PREV_LR, spec.in_channels), hidden)
        outputs = (image(SR, spec.out_channels, scale=spec.scale), replace(hidden, name=HIDDEN_OUT))
        return ModelIO(inputs, outputs, pad_multiple=spec.pad_multiple, min_size=spec.min_size)
    if spec.timestep_input:  # frame interpolation: two frames and t in (0, 1) -> the frame at t
        frames = (image(FRAME0, spec.in_channels), image(FRAME1, spec.in_channels))
        inputs = frames + (TensorSpec(TIMESTEP, ("batch", 1, 1, 1), layout="N111", sampler=_timestep_sampler),)
        outputs = (image(FRAME_OUT, spec.out_channels),)
    else:
        name_in, name_out = IMAGE_NAMES[spec.task]
        inputs = (image(name_in, spec.in_channels),) + (hint_tensors() if spec.hint_inputs else ())
        outputs = (image(name_out, spec.out_channels, scale=spec.scale),)
    inputs += tuple(scalar(n) for n in spec.scalar_inputs)
    return ModelIO(inputs, outputs, pad_multiple=spec.pad_multiple, min_size=spec.min_size)


def mc_contract(io: ModelIO, mask_channels: Dim = "mask_channels", dropout_p: float = 0.0) -> ModelIO:
    """The Monte-Carlo dropout variant: one image (batch 1) plus K masks -> K outputs ("samples").

    Masks are drawn by models.mc_dropout.sample_masks (kept with probability 1-p, scaled 1/(1-p)).
    """
    if len(io.inputs) != 1:
        raise ValueError(f"Monte-Carlo dropout supports single-input models, not {list(io.input_names)}")
    from .mc_dropout import sample_masks

    masks = TensorSpec(MASKS_INPUT, ("samples", mask_channels), layout="KC", value_range=None,
                       sampler=lambda shape, rng: sample_masks(shape[0], shape[1], dropout_p,
                                                               int(rng.integers(2**31))))
    image_in = io.inputs[0]
    return replace(io, inputs=(replace(image_in, shape=(1,) + image_in.shape[1:]), masks),
                   outputs=tuple(replace(o, shape=("samples",) + o.shape[1:]) for o in io.outputs))
