"""The tensor contract every backend is held to, and the errors serving raises.

Backends speak named NCHW float32 arrays (`{"lr": x} -> {"sr": y}` for SR). The names, shapes and
pad multiple come from the model's one tensor contract (`ModelSpec.io`, models/io.py), so a wrong
tensor or an ONNX/engine of another model fails with a sentence that names the model and what differs,
instead of a runtime shape dump.
"""
from __future__ import annotations

import functools
import sys
from typing import Any, Callable, Dict, Mapping, Sequence

import numpy as np

from models.checkpoint import CheckpointError
from models.io import TensorSpec


class ServeError(RuntimeError):
    """Base of the serving errors (callers that show messages to users catch this)."""


class BackendUnavailable(ServeError):
    """This backend cannot run here (runtime not installed, no GPU, no engine file); the message says which."""


class ModelMismatch(ServeError):
    """An ONNX file or engine does not fit the model it was loaded for (names, channels or scale)."""


class InputError(ServeError, ValueError):
    """Input tensors or images the model cannot take (rank, channels, zero size, too many pixels)."""


# What a request can get wrong (bad or unreadable input, a mismatched weights file, an unknown model,
# an unwritable path): the user gets the message, not a traceback. ImageLoadError and InputError are
# ValueErrors.
REQUEST_ERRORS = (ServeError, CheckpointError, ValueError, KeyError, OSError)


def check_control(value: Any, name: str, low: float, high: float, ends: Sequence[str]) -> float:
    """A per-image control (strength, vividness) as a float in [low, high]; InputError with a sentence for
    anything else (NaN, booleans, text). `ends` says what each end does, e.g. ("keep texture", "clean hard")."""
    low_text, high_text = f"{low:g} ({ends[0]})", f"{high:g} ({ends[1]})"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{name} must be a number from {low_text} to {high_text}, "
                         f"not {type(value).__name__} {value!r}")
    number = float(value)
    if not np.isfinite(number) or not low <= number <= high:
        raise InputError(f"{name} must be between {low_text} and {high_text}, got {number}")
    return number


def error_message(exc: BaseException) -> str:
    """The sentence to show for `exc` (a KeyError's str() would wrap its message in quotes)."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def cli_main(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a `python -m serve.X` main: a REQUEST_ERRORS failure prints `error: ...` and returns 2."""

    @functools.wraps(main)
    def wrapper(argv=None) -> int:
        try:
            return main(argv)
        except REQUEST_ERRORS as exc:
            print(f"error: {error_message(exc)}", file=sys.stderr)
            return 2

    return wrapper


def check_inputs(model: str, contract: Sequence[TensorSpec], inputs: Mapping[str, Any],
                 pad_multiple: int = 1) -> Dict[str, np.ndarray]:
    """Validate named inputs against the contract; returns contiguous float32 copies/views."""
    if not isinstance(inputs, Mapping):
        raise InputError(f"{model}: inputs must be a dict of name -> array, got {type(inputs).__name__}")
    wanted = [t.name for t in contract]
    unknown = sorted(set(inputs) - set(wanted))
    missing = [n for n in wanted if n not in inputs]
    if unknown or missing:
        raise InputError(f"{model}: expects inputs {wanted}; missing {missing}, unknown {unknown}")
    checked = {}
    for t in contract:
        arr = np.asarray(inputs[t.name])
        if arr.dtype.kind not in "fiub":
            raise InputError(f"{model}: input '{t.name}' has dtype {arr.dtype}, expected float32")
        if arr.ndim != t.rank:
            raise InputError(f"{model}: input '{t.name}' must be {t.shape_text()} ({t.rank}-D), got shape {arr.shape}")
        if arr.size == 0:
            raise InputError(f"{model}: input '{t.name}' is empty (shape {arr.shape})")
        if t.is_image and t.channels is not None and arr.shape[1] != t.channels:
            raise InputError(f"{model}: input '{t.name}' must have {t.channels} channels (NCHW), got shape {arr.shape}")
        if t.is_image and pad_multiple > 1 and (arr.shape[2] % pad_multiple or arr.shape[3] % pad_multiple):
            raise InputError(f"{model}: input '{t.name}' H and W must be multiples of {pad_multiple}, got {arr.shape}"
                             " (serve.tiling pads for you)")
        checked[t.name] = np.ascontiguousarray(arr, dtype=np.float32)
        if t.layout == "N1" and t.value_range is not None:  # a per-image control: strength, vividness
            (low, high), values = t.value_range, checked[t.name]
            if not (np.isfinite(values).all() and low <= values.min() <= values.max() <= high):
                raise InputError(f"{model}: input '{t.name}' must be between {low:g} and {high:g}, "
                                 f"got {values.ravel()[:8].tolist()}")
    batches = {t.name: checked[t.name].shape[0] for t in contract if t.shape[0] == "batch"}
    if len(set(batches.values())) > 1:
        raise InputError(f"{model}: inputs {sorted(batches)} must share one batch size N, got {batches}")
    return checked


def _batch_of(out: TensorSpec, contract_inputs: Sequence[TensorSpec], inputs: Mapping[str, np.ndarray],
              first_image: np.ndarray) -> int:
    """An output's batch: that of the input sharing its leading symbol (MC: "samples" = the masks' K)."""
    same = [t.name for t in contract_inputs if t.shape[0] == out.shape[0] and t.name in inputs]
    return inputs[same[0]].shape[0] if same else first_image.shape[0]


def check_outputs(model: str, contract: Sequence[TensorSpec], outputs: Mapping[str, np.ndarray],
                  inputs: Mapping[str, np.ndarray], source: str,
                  contract_inputs: Sequence[TensorSpec] = ()) -> Dict[str, np.ndarray]:
    """Catch a runtime that computes something else (e.g. an x2 ONNX loaded for an x4 model)."""
    first_image = next((a for a in inputs.values() if a.ndim == 4), None)
    result = {}
    for t in contract:
        if t.name not in outputs:
            raise ModelMismatch(f"{source} gave outputs {sorted(outputs)}, but '{model}' needs '{t.name}'")
        arr = np.asarray(outputs[t.name], dtype=np.float32)
        if t.is_image and first_image is not None:
            batch = _batch_of(t, contract_inputs, inputs, first_image)
            want = (batch, t.channels or arr.shape[1],
                    first_image.shape[2] * t.scale, first_image.shape[3] * t.scale)
            if arr.shape != want:
                raise ModelMismatch(f"{source} returned '{t.name}' of shape {arr.shape} for input "
                                    f"{first_image.shape}; '{model}' should give {want} (is it another model?)")
        result[t.name] = arr
    return result


def check_graph_io(model: str, source: str, contract_in: Sequence[TensorSpec], contract_out: Sequence[TensorSpec],
                   graph_in: Mapping[str, Sequence[Any]], graph_out: Mapping[str, Sequence[Any]]) -> None:
    """Compare a serialized graph's declared I/O (name -> shape, dims int or symbolic) with the contract."""
    problems = []
    for kind, contract, graph in (("input", contract_in, graph_in), ("output", contract_out, graph_out)):
        names = [t.name for t in contract]
        if kind == "input" and sorted(graph) != sorted(names):
            problems.append(f"inputs are {sorted(graph)}, expected {sorted(names)}")
            continue
        for t in contract:
            if t.name not in graph:
                problems.append(f"no {kind} '{t.name}' (has {sorted(graph)})")
                continue
            shape = list(graph[t.name])
            if len(shape) != t.rank:
                problems.append(f"{kind} '{t.name}' is {len(shape)}-D, expected {t.shape_text()}")
            elif t.is_image and t.channels is not None and isinstance(shape[1], int) and shape[1] != t.channels:
                problems.append(f"{kind} '{t.name}' has {shape[1]} channels, expected {t.channels}")
    if problems:
        want = ", ".join(t.shape_text() for t in contract_in) + " -> " + ", ".join(t.shape_text() for t in contract_out)
        raise ModelMismatch(f"{source} looks like the graph of another model: " + "; ".join(problems)
                            + f". '{model}' needs {want}; re-export it for this model.")
