"""Runs a serialized TensorRT engine (serve's TrtBackend; export/tensorrt_build checks new engines with it).

TensorRT is imported on first use, never at module import, so machines without it (the
Space's CPU tier, CI) can import export/ and serve/. Imports nothing from export/. Buffers are torch CUDA tensors, so no
pycuda/cuda-python is needed. One execution context holds per-call shapes and addresses,
hence the lock: concurrent callers take turns on the GPU instead of corrupting each other.
"""
from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import Dict, Mapping, Tuple, Union

import numpy as np
import torch

from .contract import BackendUnavailable, ServeError

TRT_INSTALL_HINT = ("TensorRT is not installed: pip install tensorrt (or tensorrt-cu12 / tensorrt-cu13 to match "
                    "your CUDA) on a machine with an NVIDIA GPU")

Array = Union[np.ndarray, torch.Tensor]


class TensorRTMissing(BackendUnavailable):
    """The tensorrt package cannot be imported here."""


def import_tensorrt():
    try:
        return importlib.import_module("tensorrt")
    except ImportError as exc:  # also covers a broken install whose CUDA libraries are missing
        raise TensorRTMissing(f"{TRT_INSTALL_HINT} ({exc})") from None


def cuda_device_name(index: int = 0) -> str:
    if not torch.cuda.is_available():
        raise BackendUnavailable("TensorRT needs a CUDA GPU, and PyTorch sees none on this machine")
    return torch.cuda.get_device_name(index)


def torch_dtype(trt, data_type) -> torch.dtype:
    """TensorRT's DataType -> torch dtype (names looked up so a missing enum is no crash)."""
    table = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT32": torch.int32,
             "INT64": torch.int64, "INT8": torch.int8, "UINT8": torch.uint8, "BOOL": torch.bool}
    for name, dtype in table.items():
        if getattr(trt.DataType, name, None) == data_type:
            return dtype
    raise ServeError(f"engine tensor type {data_type} has no torch equivalent")


class TrtEngine:
    """A deserialized engine with named I/O. infer() takes and returns {name: array}.

    NumPy inputs give NumPy (float32) outputs; torch inputs give CUDA torch outputs.
    """

    def __init__(self, engine_path: Path, device: int = 0):
        self.path = Path(engine_path)
        if not self.path.exists():
            raise ServeError(f"{self.path}: TensorRT engine not found")
        trt = import_tensorrt()
        cuda_device_name(device)
        self._device = torch.device("cuda", device)
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))  # must outlive the engine
        with torch.cuda.device(self._device):
            self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise ServeError(f"{self.path}: TensorRT {trt.__version__} cannot load this engine (built by another "
                              f"TensorRT version or for another GPU); rebuild it with `python -m export trt`")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = tuple(n for n in names if is_input[n])
        self.output_names = tuple(n for n in names if not is_input[n])
        self.dtypes = {n: torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}
        self._stream = torch.cuda.Stream(device=self._device)
        self._lock = threading.Lock()

    @property
    def shapes(self) -> Dict[str, list]:
        """Engine I/O shapes with -1 for dynamic dims (serve/ checks them against the model contract)."""
        return {n: list(self.engine.get_tensor_shape(n)) for n in self.input_names + self.output_names}

    def close(self) -> None:
        """Free the context and engine now rather than at garbage collection."""
        with self._lock:
            self.context = None
            self.engine = None

    def profile(self, name: str) -> Tuple[Tuple[int, ...], Tuple[int, ...], Tuple[int, ...]]:
        """(min, opt, max) shapes the engine accepts for input `name` (profile 0)."""
        return tuple(tuple(s) for s in self.engine.get_tensor_profile_shape(name, 0))  # type: ignore[return-value]

    def infer(self, inputs: Mapping[str, Array]) -> Dict[str, Array]:
        missing = [n for n in self.input_names if n not in inputs]
        unknown = [n for n in inputs if n not in self.input_names]
        if missing or unknown:
            raise ValueError(f"engine inputs are {list(self.input_names)}; missing {missing}, unknown {unknown}")
        as_numpy = not all(isinstance(v, torch.Tensor) for v in inputs.values())
        with self._lock, torch.cuda.device(self._device):
            self._stream.wait_stream(torch.cuda.current_stream(self._device))  # caller's tensors are ready
            with torch.cuda.stream(self._stream):
                outputs = self._run(inputs)
            self._stream.synchronize()
        if as_numpy:
            return {n: (o.float() if o.is_floating_point() else o).cpu().numpy() for n, o in outputs.items()}
        return outputs

    def _run(self, inputs: Mapping[str, Array]) -> Dict[str, torch.Tensor]:
        feeds = {}
        for name in self.input_names:
            value = inputs[name]
            tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
            tensor = tensor.to(self._device, self.dtypes[name], non_blocking=True).contiguous()
            if not self.context.set_input_shape(name, tuple(tensor.shape)):
                low, _, high = self.profile(name)
                raise ValueError(f"input '{name}' of shape {tuple(tensor.shape)} is outside the engine's "
                                 f"profile {low}..{high}")
            self.context.set_tensor_address(name, tensor.data_ptr())
            feeds[name] = tensor  # keep alive until the stream has run
        outputs = {}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            outputs[name] = torch.empty(shape, dtype=self.dtypes[name], device=self._device)
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        if not self.context.execute_async_v3(self._stream.cuda_stream):
            raise RuntimeError(f"{self.path.name}: TensorRT execution failed (see the TensorRT log)")
        return outputs
