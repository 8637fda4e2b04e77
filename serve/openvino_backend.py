"""OpenVINO on the CPU: the project's ONNX files (fp32 or int8 QDQ) compiled once, at fp32 or bf16.

Why a second CPU runtime: OpenVINO runs bf16 convolutions (AVX512-BF16 or AMX) and int8 QDQ graphs
(VNNI / AMX) natively; ONNX Runtime's CPU provider has no bf16 path. The graph keeps its dynamic
N/H/W: OpenVINO's CPU plugin compiles once and caches per-shape kernels itself, so tiles of a new
size cost one slower call (measured ~0.3 s at a new shape), not a recompile.

bf16 is only asked for where the CPU reports it (OPTIMIZATION_CAPABILITIES has 'BF16'); elsewhere
the backend compiles fp32 and says why in `precision_note`. fp32 is always requested explicitly,
because on AMX CPUs OpenVINO's default is bf16, which would make "exact fp32" inexact.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from .backends import Backend, BackendUnavailable, ModelMismatch, ServeError, module_available
from .contract import check_graph_io
from .tiling import onnx_receptive_radius

OV_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: the QDQ parts run int8, the rest stays fp32


@lru_cache(maxsize=1)
def ov_core():
    """One openvino.Core per process (it owns the plugins and their thread pools)."""
    if not module_available("openvino"):
        raise BackendUnavailable("OpenVINO is not installed (pip package 'openvino')")
    try:
        import openvino as ov
    except ImportError as exc:  # installed but broken (wrong glibc, missing libs)
        raise BackendUnavailable(f"OpenVINO does not import here ({exc})") from None
    return ov.Core()


def cpu_capabilities() -> List[str]:
    """What the CPU plugin can run natively, e.g. ['BF16', 'WINOGRAD', 'FP32', 'INT8', ...]."""
    return [str(c) for c in ov_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def bf16_support() -> Tuple[bool, str]:
    """(supported, why): bf16 only where the CPU has AVX512-BF16 or AMX (OpenVINO reports 'BF16')."""
    try:
        caps = cpu_capabilities()
    except BackendUnavailable as exc:
        return False, str(exc)
    if "BF16" in caps:
        return True, "CPU reports BF16 (AVX512-BF16 or AMX)"
    return False, f"this CPU has no native bf16 (OpenVINO OPTIMIZATION_CAPABILITIES: {', '.join(caps)})"


def _graph_shapes(ports) -> Dict[str, List[Any]]:
    """OpenVINO ports -> name -> dims (int, or -1 for a dynamic dim), as check_graph_io expects."""
    shapes = {}
    for port in ports:
        dims = [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]
        shapes[port.get_any_name()] = dims
    return shapes


class OpenVinoBackend(Backend):
    """An ONNX file compiled by OpenVINO for the CPU at `precision` ('fp32', 'bf16' or 'int8').

    `onnx_path` is the graph to run (for int8 the QDQ file); `fp32_onnx` (default: the same) is the
    exported fp32 graph whose stamp and receptive radius are checked. One infer request behind a lock:
    a CPU request already uses every thread, and a single request keeps memory bounded.
    """

    kind = "openvino"

    def __init__(self, model_name: str, onnx_path: Union[str, Path], *, precision: str = "fp32",
                 threads: Optional[int] = None, mc: bool = False, fp32_onnx: Optional[Union[str, Path]] = None):
        super().__init__(model_name, mc)
        if precision not in OV_HINTS:
            raise ServeError(f"OpenVINO precision must be one of {', '.join(OV_HINTS)}, not '{precision}'")
        core = ov_core()
        self.onnx_path = Path(onnx_path)
        if not self.onnx_path.is_file():
            raise ServeError(f"{self.onnx_path}: ONNX file not found (export it with `python -m export`)")
        self.precision_note = ""
        if precision == "bf16":
            ok, why = bf16_support()
            if not ok:
                self.precision_note = f"bf16 skipped, running fp32: {why}"
                self.selection_reason = f"{model_name}: {self.precision_note}"
                precision = "fp32"
        self.precision = precision
        try:
            model = core.read_model(str(self.onnx_path))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with the parser's message
            raise ModelMismatch(f"{self.onnx_path}: OpenVINO cannot read it ({str(exc).strip()[:300]})") from None
        exported_from = _onnx_stamp(Path(fp32_onnx or self.onnx_path)).get("model")
        if exported_from and exported_from != model_name:
            raise ModelMismatch(f"{self.onnx_path} is the ONNX of another model: exported from '{exported_from}', "
                                f"not '{model_name}'")
        check_graph_io(model_name, str(self.onnx_path), self.inputs, self.outputs,
                       _graph_shapes(model.inputs), _graph_shapes(model.outputs))
        config = {"INFERENCE_PRECISION_HINT": OV_HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:
            raise BackendUnavailable(f"OpenVINO could not compile {self.onnx_path.name} at {precision}: "
                                     f"{str(exc).strip()[:300]}") from None
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()
        self._output_names = [t.name for t in self.outputs]
        self._ports = {t.name: self.compiled.output(t.name) for t in self.outputs}
        self.provider = f"OpenVINO {_version()} CPU {precision}"
        self._radius = onnx_receptive_radius(Path(fp32_onnx or self.onnx_path))

    def _run(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        with self._lock:
            result = self._request.infer(inputs)  # copies outputs out of the request's buffers
            return {name: np.asarray(result[self._ports[name]]) for name in self._output_names}

    def release_memory(self) -> None:
        """OpenVINO keeps a compiled model's intermediate buffers at the largest shape it has run
        (0.1-0.5 GB per model after a 2 MP request); free them unless a call is running now."""
        if self._lock.acquire(blocking=False):
            try:
                if self.compiled is not None:
                    self.compiled.release_memory()
            finally:
                self._lock.release()

    def describe(self) -> Dict[str, str]:
        info = {**super().describe(), "precision": self.precision}
        if self.precision_note:
            info["precision_note"] = self.precision_note
        return info

    def close(self) -> None:
        self._request = None
        self.compiled = None


def _onnx_stamp(path: Path) -> Dict[str, str]:
    """The stsr.* metadata export/ writes into every ONNX file (OpenVINO does not expose it)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # unreadable: OpenVINO's own read reports the real problem
        return {}
    return {p.key[len("stsr."):]: p.value for p in model.metadata_props if p.key.startswith("stsr.")}


def _version() -> str:
    import openvino

    return openvino.__version__.split("-")[0]


__all__ = ["OpenVinoBackend", "bf16_support", "cpu_capabilities", "ov_core"]
