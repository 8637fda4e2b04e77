"""Inference backends behind one interface: named NCHW float32 arrays in, named arrays out.

PyTorch, ONNX Runtime and TensorRT each load the same registered model; the pipeline code
(serve.sr, .colorize, .interpolate, .uncertainty, serve.tiling) only ever calls `run` and never
knows which runtime answered. Heavy runtimes are imported inside the classes so `import serve`
works on a machine that has neither onnxruntime-gpu nor TensorRT.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from common.paths import PROJECT_ROOT
from models import get_spec, load_model
from models.io import HINT_AB, HINT_MASK, mc_contract

from .contract import (
    BackendUnavailable,
    InputError,
    ModelMismatch,
    ServeError,
    check_graph_io,
    check_inputs,
    check_outputs,
)
from .tiling import onnx_receptive_radius, receptive_radius, spec_radius

TRT_EP, CUDA_EP, CPU_EP = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
GPU_PROVIDERS = (TRT_EP, CUDA_EP)


def cache_dir() -> Path:
    """Where ORT-TensorRT engine and timing caches live (env STSR_CACHE, default .cache/ in the project)."""
    return Path(os.environ.get("STSR_CACHE", PROJECT_ROOT / ".cache"))


class Backend(ABC):
    """One loaded model on one runtime. `run` validates inputs and outputs against the registry spec.

    mc=True: the Monte-Carlo dropout variant ({"lr": 1xCxHxW, "masks": KxM} -> K outputs, models/mc_dropout.py).
    """

    kind = "base"

    def __init__(self, model_name: str, mc: bool = False):
        self.model_name = model_name
        self.spec = get_spec(model_name)
        if mc and not self.spec.mc_dropout:
            raise ServeError(f"'{model_name}' has no Monte-Carlo dropout (its spec says mc_dropout=False)")
        self.mc = mc
        self.io = mc_contract(self.spec.io) if mc else self.spec.io
        self.inputs, self.outputs = self.io.inputs, self.io.outputs
        self.device = "cpu"
        self.provider = ""  # what actually runs it: "torch cpu fp32", "CPUExecutionProvider", "TensorRT 10.x"
        self.selection_reason = ""  # set by serve.runtime.best_available
        self.precision = "fp32"  # what the arithmetic runs in: fp32, fp16, bf16 or int8
        self._radius: Optional[int] = None  # of the loaded graph, when the runtime lets us read it

    @property
    def receptive_radius(self) -> int:
        """Input pixels of context each output needs (serve.tiling's exact-overlap rule)."""
        return self._radius if self._radius is not None else spec_radius(self.model_name)

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.model_name}"

    def run(self, inputs: Mapping[str, Any]) -> Dict[str, np.ndarray]:
        missing = [n for n in self.spec.scalar_inputs if isinstance(inputs, Mapping) and n not in inputs]
        if missing:  # callers that set no strength / vividness (bench, video, MC) get the default
            inputs = {**inputs, **{n: default_scalar(n, inputs, self.inputs[0].name) for n in missing}}
        if self.spec.hint_inputs and isinstance(inputs, Mapping) and not {HINT_AB, HINT_MASK} & set(inputs):
            inputs = {**inputs, **no_hints(inputs, self.inputs[0].name)}  # none given: automatic mode
        checked = check_inputs(self.model_name, self.inputs, inputs, self.spec.pad_multiple)
        raw = self._run(checked)
        return check_outputs(self.model_name, self.outputs, raw, checked, f"{self.kind} backend ({self.provider})",
                             self.inputs)

    @abstractmethod
    def _run(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Runtime-specific inference on already validated float32 arrays."""

    def close(self) -> None:  # noqa: B027 - optional hook: most runtimes free themselves when dropped
        """Release runtime resources; the backend must not be used afterwards."""

    def release_memory(self) -> None:  # noqa: B027 - optional hook: ORT without its arena keeps nothing
        """Give back buffers the runtime keeps between calls (sized by the largest input so far); the
        backend stays usable and allocates again on its next call."""

    def describe(self) -> Dict[str, str]:
        return {"backend": self.kind, "provider": self.provider, "device": self.device, "model": self.model_name,
                "precision": self.precision, **({"variant": "mc"} if self.mc else {})}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.model_name} on {self.provider}>"


def default_scalar(name: str, inputs: Mapping[str, Any], image_name: str) -> np.ndarray:
    """(N,1) of a scalar input's default (models.registry.SCALAR_DEFAULTS), for callers that set none."""
    from models.registry import SCALAR_DEFAULTS

    batch = np.asarray(inputs[image_name]).shape[0] if image_name in inputs else 1
    return np.full((batch, 1), SCALAR_DEFAULTS[name], dtype=np.float32)


def no_hints(inputs: Mapping[str, Any], image_name: str) -> Dict[str, np.ndarray]:
    """All-zero hint tensors (automatic colorization) shaped like the grey input, for callers that give none."""
    n, _, h, w = np.asarray(inputs[image_name]).shape
    return {HINT_AB: np.zeros((n, 2, h, w), np.float32), HINT_MASK: np.zeros((n, 1, h, w), np.float32)}


def module_available(name: str) -> bool:
    """Installed, without importing it (TensorRT's import alone takes seconds and GPU memory)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: in sys.modules without a spec
        return name in sys.modules


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class TorchBackend(Backend):
    """The PyTorch module itself: the reference every other backend is tested against.

    Positional mapping: the module is called with the contract's inputs in order, and a tensor
    result (or a tuple of them) is named after the contract's outputs. fp16 is CUDA-only (CPU half
    convs are slow and inaccurate); outputs are always float32.
    """

    kind = "torch"

    def __init__(self, model_name: str, *, device: str = "cpu", fp16: bool = False,
                 weights_path: Optional[Union[str, Path]] = None, module=None, mc: bool = False):
        super().__init__(model_name, mc)
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable("torch has no CUDA here (CPU-only build or no GPU)")
        if fp16 and not device.startswith("cuda"):
            raise ValueError("fp16 is only supported on CUDA")
        self._torch = torch
        if device.startswith("cuda"):
            # Tiles give a handful of fixed shapes: let cuDNN time its algorithms once per shape.
            torch.backends.cudnn.benchmark = True
        self._dtype = torch.float16 if fp16 else torch.float32
        module = module if module is not None else load_model(model_name, weights_path)
        if mc:
            module = _mc_module(model_name, module)
        elif self.spec.strength_input or self.spec.recurrent_hidden:  # (lr, strength) / one video SR step
            from models.registry import positional_module

            module = positional_module(self.spec, module)
        self.module = module.eval().to(device=device, dtype=self._dtype)
        # CUDA: NHWC is what cuDNN's tensor-core convs want; on CPU torch's default NCHW is as fast here
        self._channels_last = device.startswith("cuda")
        if self._channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.precision = "fp16" if fp16 else "fp32"
        self._radius = receptive_radius(self.module)
        self.device = "cuda" if device.startswith("cuda") else "cpu"
        self._device = torch.device(device)
        self.provider = f"torch {device} {'fp16' if fp16 else 'fp32'}"
        # CUDA: one stream of work at a time keeps memory bounded and fp16 buffers unshared.
        self._lock = threading.Lock() if self.device == "cuda" else None

    def _forward(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            args = [torch.from_numpy(inputs[t.name]).to(self._device, self._dtype) for t in self.inputs]
            if self._channels_last:
                args = [a.contiguous(memory_format=torch.channels_last) if a.dim() == 4 else a for a in args]
            result = self.module(*args)
            if isinstance(result, Mapping):
                items = dict(result)
            else:
                tensors = result if isinstance(result, (tuple, list)) else (result,)
                items = {t.name: v for t, v in zip(self.outputs, tensors)}
            return {k: v.float().cpu().numpy() for k, v in items.items()}

    def _run(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        if self._lock is None:
            return self._forward(inputs)
        with self._lock:
            return self._forward(inputs)

    def close(self) -> None:
        self.module = None
        if self.device == "cuda":
            self._torch.cuda.empty_cache()


def _mc_module(model_name: str, module):
    """The module wrapped so it takes explicit dropout masks (models.mc_wrapper.MCDropoutWrapper);
    Backend.__init__ has already checked the spec declares mc_dropout."""
    from models.mc_wrapper import MCDropoutWrapper

    return module if isinstance(module, MCDropoutWrapper) else MCDropoutWrapper(module)


ProviderChoice = Union[str, Sequence[str]]


class OrtBackend(Backend):
    """An ONNX file on ONNX Runtime, on the first execution provider of TensorRT -> CUDA -> CPU that loads.

    `providers`: 'auto' (all three, in that order), 'gpu' (TensorRT, CUDA; fails if neither loads),
    'cpu', or an explicit list. `provider` reports the one that actually runs the graph.
    """

    kind = "onnx"

    def __init__(self, model_name: str, onnx_path: Union[str, Path], *, providers: ProviderChoice = "auto",
                 threads: Optional[int] = None, trt_fp16: bool = False, device_id: int = 0, mc: bool = False):
        super().__init__(model_name, mc)
        import onnxruntime as ort

        self.onnx_path = Path(onnx_path)
        if not self.onnx_path.is_file():
            raise ServeError(f"{self.onnx_path}: ONNX file not found (export it with export.onnx_export)")
        wanted = self._wanted_providers(providers)
        available = ort.get_available_providers()
        candidates = [p for p in wanted if p in available]
        self.skipped = [f"{p}: not in this onnxruntime build" for p in wanted if p not in available]
        if not candidates:
            raise BackendUnavailable(f"onnxruntime has none of {wanted} (available: {', '.join(available)})")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = int(threads or 0)  # 0: ORT picks (one per physical core)
        options.log_severity_level = 3  # errors only: TRT/CUDA fallbacks are reported through `skipped`
        # No CPU arena: it would keep the peak of the largest input ever seen for the session's lifetime
        # (a 720p request left ~1.9 GB per model behind); freed buffers go back to malloc instead.
        options.enable_cpu_mem_arena = False
        self.session = self._first_session_that_loads(ort, options, candidates, trt_fp16, device_id)
        self.provider = self.session.get_providers()[0]
        for p in candidates[: candidates.index(self.provider)] if self.provider in candidates else []:
            if not any(s.startswith(p) for s in self.skipped):
                self.skipped.append(f"{p}: did not initialise (onnxruntime fell back)")
        if self.provider not in candidates:
            raise BackendUnavailable(f"onnxruntime fell back to {self.provider}; asked for {candidates}")
        self.device = "cuda" if self.provider in GPU_PROVIDERS else "cpu"
        exported_from = self.session.get_modelmeta().custom_metadata_map.get("stsr.model")  # export/'s stamp
        if exported_from and exported_from != model_name:
            raise ModelMismatch(f"{self.onnx_path} is the ONNX of another model: exported from '{exported_from}', "
                                f"not '{model_name}'")
        check_graph_io(model_name, str(self.onnx_path), self.inputs, self.outputs,
                       {i.name: i.shape for i in self.session.get_inputs()},
                       {o.name: o.shape for o in self.session.get_outputs()})
        self._output_names = [t.name for t in self.outputs]
        self._radius = onnx_receptive_radius(self.onnx_path)

    @staticmethod
    def _wanted_providers(providers: ProviderChoice) -> List[str]:
        if isinstance(providers, str):
            table = {"auto": [TRT_EP, CUDA_EP, CPU_EP], "gpu": [TRT_EP, CUDA_EP], "cpu": [CPU_EP]}
            if providers not in table:
                raise ValueError(f"providers must be one of {sorted(table)} or a list, not '{providers}'")
            return table[providers]
        return list(providers)

    def _provider_options(self, provider: str, trt_fp16: bool, device_id: int) -> Dict[str, Any]:
        if provider == TRT_EP:
            trt_cache = cache_dir() / "ort-trt"
            trt_cache.mkdir(parents=True, exist_ok=True)
            # "1"/"0": ORT passes option values as strings, and every ORT version parses these as bools
            return {"device_id": str(device_id), "trt_fp16_enable": "1" if trt_fp16 else "0",
                    "trt_engine_cache_enable": "1", "trt_engine_cache_path": str(trt_cache),
                    "trt_timing_cache_enable": "1", "trt_timing_cache_path": str(trt_cache),
                    **trt_profile_shapes(self.onnx_path)}
        if provider == CUDA_EP:
            return {"device_id": str(device_id)}
        return {}

    def _first_session_that_loads(self, ort, options, candidates: List[str], trt_fp16: bool, device_id: int):
        """Create the session, dropping the leading provider each time one fails to initialise."""
        for start in range(len(candidates)):
            chain = candidates[start:]
            try:
                return ort.InferenceSession(str(self.onnx_path), sess_options=options, providers=chain,
                                            provider_options=[self._provider_options(p, trt_fp16, device_id)
                                                              for p in chain])
            except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/RuntimeException types
                text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
                if chain == [CPU_EP]:  # the CPU provider always initialises: the file itself is bad
                    raise ModelMismatch(f"{self.onnx_path}: not a loadable ONNX model ({text})") from None
                self.skipped.append(f"{chain[0]}: {text}")
        raise BackendUnavailable(f"no execution provider could load {self.onnx_path}: " + "; ".join(self.skipped))

    def _run(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        values = self.session.run(self._output_names, inputs)  # InferenceSession.run is thread-safe
        return dict(zip(self._output_names, values))

    def close(self) -> None:
        self.session = None


TRT_PROFILE = {"batch": (1, 1, 8), "samples": (1, 8, 64), "height": (16, 256, 1088), "width": (16, 256, 1920)}


def trt_profile_shapes(onnx_path: Path) -> Dict[str, str]:
    """ORT-TensorRT's explicit optimisation profile (min/opt/max per input) from the graph's dynamic dims.

    Without one, ORT-TensorRT rebuilds its engine whenever a tile shape leaves the range seen so far.
    Dim 0 is the batch (the MC graph's 2-D masks: the K samples), dims 2 and 3 are H and W.
    """
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    shapes: Dict[str, List[str]] = {"min": [], "opt": [], "max": []}
    for inp in graph.input:
        if inp.name in initializers:
            continue
        dims = inp.type.tensor_type.shape.dim
        picks = []
        for axis, dim in enumerate(dims):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                picks.append((dim.dim_value,) * 3)
            else:
                role = {0: "samples" if len(dims) == 2 else "batch", 2: "height", 3: "width"}.get(axis, "batch")
                picks.append(TRT_PROFILE[role])
        for i, level in enumerate(("min", "opt", "max")):
            shapes[level].append(f"{inp.name}:" + "x".join(str(p[i]) for p in picks))
    return {f"trt_profile_{level}_shapes": ",".join(v) for level, v in shapes.items()}


class TrtBackend(Backend):
    """A serialized TensorRT engine run through serve.trt_runtime.TrtEngine (named tensors, execute_async_v3).

    TrtEngine serialises calls on its execution context (per-shape state) with its own lock.
    """

    kind = "trt"

    def __init__(self, model_name: str, engine_path: Union[str, Path], mc: bool = False):
        super().__init__(model_name, mc)
        if not module_available("tensorrt"):
            raise BackendUnavailable("TensorRT is not installed (pip package 'tensorrt')")
        try:
            from .trt_runtime import TrtEngine
        except ImportError as exc:
            raise BackendUnavailable(f"serve.trt_runtime is not available ({exc})") from None
        self.engine_path = Path(engine_path)
        if not self.engine_path.is_file():
            raise BackendUnavailable(f"{self.engine_path}: no TensorRT engine (build it with export/)")
        try:
            self.engine = TrtEngine(self.engine_path)
        except Exception as exc:  # no CUDA device, engine built by another TensorRT version, ...
            raise BackendUnavailable(f"TensorRT could not load {self.engine_path}: {exc}") from None
        names_in = getattr(self.engine, "input_names", None)
        names_out = getattr(self.engine, "output_names", None)
        if names_in is not None and names_out is not None:
            shapes = getattr(self.engine, "shapes", {}) or {}
            check_graph_io(model_name, str(self.engine_path), self.inputs, self.outputs,
                           {n: shapes.get(n, [-1, None, -1, -1]) for n in names_in},
                           {n: shapes.get(n, [-1, None, -1, -1]) for n in names_out})
        import tensorrt

        self.device = "cuda"
        self.provider = f"TensorRT {tensorrt.__version__}"

    def _run(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        return dict(self.engine.infer(inputs))

    def close(self) -> None:
        close = getattr(self.engine, "close", None)
        if callable(close):
            close()
        self.engine = None


__all__ = ["Backend", "TorchBackend", "OrtBackend", "TrtBackend", "BackendUnavailable", "ModelMismatch",
           "InputError", "ServeError", "cache_dir", "cuda_available", "module_available"]
