"""Choosing, creating and caching backends: one session/engine per (model, backend kind, options).

Kinds, fastest first (the order `best_available` tries them in at fp32):
    trt           TensorRT engine (export/ builds it on first use and caches it under weights/trt/)
    onnx-gpu      ONNX Runtime on its TensorRT or CUDA provider
    torch-cuda    PyTorch on CUDA (fp16 optional)
    onnx-cpu      ONNX Runtime on CPU (fp32, or int8 on the QDQ file from `python -m export int8`)
    openvino-cpu  OpenVINO on CPU (fp32, bf16 where the CPU has it, int8)
    torch-cpu     PyTorch on CPU
Aliases: 'torch' (CUDA if available, else CPU), 'onnx' (ORT with TensorRT -> CUDA -> CPU, first that
loads), 'openvino', 'auto' (best_available). `precision` ('fp32', 'bf16', 'int8' or 'auto', see
serve.precision) is an option like any other. Creating a session costs seconds (an ORT-TensorRT
engine build: minutes), so every caller goes through `get_backend`, which creates each one once, under
a lock, and keeps at most STSR_MAX_SESSIONS (default 4) loaded: the least recently used is dropped
(its memory is freed when the last request still running on it returns).
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from models import CheckpointError, get_spec
from models.checkpoint import file_sha256

from .backends import (
    GPU_PROVIDERS,
    Backend,
    BackendUnavailable,
    OrtBackend,
    ServeError,
    TorchBackend,
    TrtBackend,
    cache_dir,
    cuda_available,
    module_available,
)
from .precision import (
    AUTO_MAX_LOSS_DB,
    auto_candidates,
    check_supported,
    low_precision_path,
    measured_loss,
    parse_precision,
    read_record,
)
from .tiling import onnx_receptive_radius

KINDS = ("trt", "onnx-gpu", "torch-cuda", "onnx-cpu", "openvino-cpu", "torch-cpu")
ALIASES = ("torch", "onnx", "openvino", "auto")
RECOVERABLE_ERRORS = (ServeError, CheckpointError, ImportError, OSError)  # "this kind cannot run", not a bug
DEFAULT_MAX_SESSIONS = 4

_cache: OrderedDict[Tuple, Backend] = OrderedDict()  # least recently used first
_cache_lock = threading.Lock()
_key_locks: Dict[Tuple, threading.Lock] = {}


def resolve_kind(kind: str) -> str:
    """Map an alias to a concrete kind ('auto' stays: it is resolved by best_available)."""
    if kind == "torch":
        return "torch-cuda" if cuda_available() else "torch-cpu"
    if kind == "openvino":
        return "openvino-cpu"
    if kind in KINDS or kind in ("onnx", "auto"):
        return kind
    raise ValueError(f"unknown backend '{kind}'; use one of {', '.join(KINDS + ALIASES)}")


def onnx_path_for(model_name: str, weights_path: Optional[Union[str, Path]] = None, mc: bool = False) -> Path:
    """The model's ONNX file, exported by export/ once and again only when the weights or the model's code change.

    Shipped weights use the committed export in weights/onnx/ when its sidecar names the current weights'
    SHA-256 and code fingerprint (no torch needed); a missing or stale one is re-exported there, which needs
    torch. Any other checkpoint (benchmarks, tests) exports to the serve cache, one folder per checkpoint
    checksum, so it never overwrites the shipped model's file. mc=True: the Monte-Carlo dropout variant NAME_mc.onnx.
    """
    from export.onnx_files import REGENERATE, current_reason

    weights = Path(weights_path) if weights_path else get_spec(model_name).weights_path
    if not weights.exists():
        raise CheckpointError(f"model '{model_name}' has no weights at {weights} (train it with train/ first)")
    out_dir = None if weights_path is None else cache_dir() / "onnx" / file_sha256(weights)[:16]
    out, reason = current_reason(model_name, weights, out_dir, mc=mc)
    if reason is None:
        return out
    try:
        from export.artifacts import ExportError
        from export.onnx_export import ensure_onnx
    except ImportError as exc:
        raise BackendUnavailable(f"{out.name} cannot be used ({reason}) and ONNX export is unavailable here "
                                 f"({exc}): run `{REGENERATE}` where torch is installed") from None
    try:
        return Path(ensure_onnx(model_name, weights, out_dir, mc=mc))
    except ExportError as exc:
        raise ServeError(f"could not export '{model_name}' to ONNX: {exc}") from None


def stale_exports() -> List[Tuple[str, str]]:
    """(file, why) for each shipped ONNX export that is missing or stale (app start-up logs them)."""
    from export.onnx_files import shipped_problems

    return [tuple(line.split(": ", 1)) for line in shipped_problems()]


def export_record(model_name: str, weights_path: Optional[Union[str, Path]] = None, mc: bool = False) -> Dict:
    """The sidecar of the model's current ONNX export (what it was made from, its MC dropout parameters)."""
    from export.onnx_files import read_onnx_record

    return read_onnx_record(onnx_path_for(model_name, weights_path, mc)) or {}


def engine_path_for(model_name: str, weights_path: Optional[Union[str, Path]] = None, fp16: bool = False,
                    mc: bool = False) -> Path:
    """The TensorRT engine for this GPU and TensorRT version: export/'s cached one, built on first use
    (minutes; later calls and processes reuse it from weights/trt/)."""
    try:
        from export.artifacts import ExportError
        from export.tensorrt_build import build_engine
    except ImportError as exc:
        raise BackendUnavailable(f"TensorRT engine building is unavailable ({exc}); pass engine_path=...") from None
    source = onnx_path_for(model_name, weights_path, mc) if weights_path else None  # never re-export the shipped name
    try:
        return Path(build_engine(model_name, onnx_file=source, mc=mc, precision="fp16" if fp16 else "fp32"))
    except ExportError as exc:  # no GPU, TensorRT import failing, a build that fails its parity check...
        raise BackendUnavailable(f"no TensorRT engine for '{model_name}': {exc}") from None


def create_backend(model_name: str, kind: str, *, weights_path: Optional[str] = None, onnx_path: Optional[str] = None,
                   engine_path: Optional[str] = None, threads: Optional[int] = None, fp16: bool = False,
                   mc: bool = False, precision: Optional[str] = None) -> Backend:
    """A new backend of a concrete kind (or 'torch'/'onnx'/'openvino'); raises BackendUnavailable when it
    cannot run here.

    fp16 applies on GPU only (torch-cuda, ORT's TensorRT provider); `threads` sets ORT's and OpenVINO's
    intra-op pool (torch's pool is process-wide: set it with torch.set_num_threads). mc=True loads the
    Monte-Carlo dropout variant (dropout masks as an input; serve.uncertainty uses it). `precision`:
    'fp32' (default), 'bf16' (OpenVINO) or 'int8' (ONNX Runtime / OpenVINO on the QDQ export).
    """
    kind = resolve_kind(kind)
    precision = parse_precision(precision)
    if kind == "auto" or precision == "auto":
        raise ValueError("create_backend needs a concrete kind and precision; use best_available for 'auto'")
    unsupported = check_supported(kind, precision)
    if unsupported:
        raise BackendUnavailable(unsupported)
    if kind.startswith("torch") and not module_available("torch"):
        raise BackendUnavailable("PyTorch is not installed (pip install -r requirements-torch.txt); "
                                 "the onnx and openvino backends serve the shipped ONNX files without it")
    if kind == "torch-cpu":
        return TorchBackend(model_name, device="cpu", weights_path=weights_path, mc=mc)
    if kind == "torch-cuda":
        if not cuda_available():
            raise BackendUnavailable("torch has no CUDA here (CPU-only build or no GPU)")
        return TorchBackend(model_name, device="cuda", fp16=fp16, weights_path=weights_path, mc=mc)
    if kind == "trt":
        if not module_available("tensorrt"):
            raise BackendUnavailable("TensorRT is not installed (pip package 'tensorrt')")
        return TrtBackend(model_name, engine_path or engine_path_for(model_name, weights_path, fp16, mc), mc=mc)
    if kind == "openvino-cpu":
        if not module_available("openvino"):
            raise BackendUnavailable("OpenVINO is not installed (pip package 'openvino')")
        from .openvino_backend import OpenVinoBackend

        fp32 = Path(onnx_path or onnx_path_for(model_name, weights_path, mc))
        graph = int8_path(fp32) if precision == "int8" else fp32
        return OpenVinoBackend(model_name, graph, precision=precision, threads=threads, mc=mc, fp32_onnx=fp32)
    providers = {"onnx": "auto", "onnx-gpu": "gpu", "onnx-cpu": "cpu"}[kind]
    if providers == "gpu":
        import onnxruntime as ort

        if not set(GPU_PROVIDERS) & set(ort.get_available_providers()):
            raise BackendUnavailable("onnxruntime has no GPU provider here (install onnxruntime-gpu); available: "
                                     + ", ".join(ort.get_available_providers()))
    path = Path(onnx_path or onnx_path_for(model_name, weights_path, mc))
    if precision == "int8":  # the QDQ graph runs on ORT's CPU provider (its TensorRT int8 needs calibration)
        backend = OrtBackend(model_name, int8_path(path), providers="cpu", threads=threads, mc=mc)
        backend._radius = onnx_receptive_radius(path)  # the QDQ graph hides kernel shapes behind Dequantize
        backend.precision = "int8"
        return backend
    return OrtBackend(model_name, path, providers=providers, threads=threads, trt_fp16=fp16, mc=mc)


def int8_path(fp32_onnx: Path) -> Path:
    """The int8 QDQ model beside `fp32_onnx`, when it exists, is current and was not refused."""
    record, why = read_record(fp32_onnx, "int8")
    if record is None:
        raise BackendUnavailable(why)
    if record.get("refused"):
        raise BackendUnavailable(f"int8 was refused at export: {record.get('reason', '')}")
    path = low_precision_path(fp32_onnx, "int8")
    if not path.is_file():
        raise BackendUnavailable(f"{path.name} is missing (run `python -m export int8`)")
    return path


def _options_key(options: Dict[str, Any]) -> Tuple:
    """Hashable options, with defaults (None/False/fp32) dropped so fp16=False and no fp16 share a backend."""
    return tuple(sorted((k, str(v) if isinstance(v, Path) else v) for k, v in options.items()
                        if v is not None and v is not False and not (k == "precision" and v == "fp32")))


def max_sessions() -> int:
    """How many backends stay loaded at once (env STSR_MAX_SESSIONS, default 4, at least 1)."""
    try:
        return max(1, int(os.environ.get("STSR_MAX_SESSIONS", DEFAULT_MAX_SESSIONS)))
    except ValueError:
        return DEFAULT_MAX_SESSIONS


def _touch(backend: Backend) -> None:
    """Mark every key of `backend` most recently used (caller holds _cache_lock)."""
    for key in [k for k, b in _cache.items() if b is backend]:
        _cache.move_to_end(key)


def _store(key: Tuple, backend: Backend) -> List[Backend]:
    """Cache `backend` under `key`, dropping least recently used backends beyond the cap; returns the dropped."""
    dropped: List[Backend] = []
    with _cache_lock:
        _cache[key] = backend
        _touch(backend)
        while len({id(b) for b in _cache.values()}) > max_sessions():
            victim = next(iter(_cache.values()))
            for k in [k for k, b in _cache.items() if b is victim]:
                del _cache[k]
            dropped.append(victim)
    return dropped


def loaded_backends() -> List[Backend]:
    """The distinct cached backends, least recently used first."""
    with _cache_lock:
        return list({id(b): b for b in _cache.values()}.values())


def release_idle_memory() -> None:
    """Every loaded backend gives back the buffers it keeps between calls (after a request: a server's
    resident memory then returns to the size of its loaded models, whatever the largest input was)."""
    for backend in loaded_backends():
        backend.release_memory()


def get_backend(model_name: str, kind: str = "auto", **options) -> Backend:
    """The cached backend for (model, kind, options), created on first use; safe to call from many threads.

    `precision='auto'` (or kind 'auto') goes through best_available; with a concrete kind, auto only
    chooses among that kind's precisions.
    """
    get_spec(model_name)  # unknown names fail here, not inside a runtime
    kind = resolve_kind(kind)
    if "precision" in options:
        options["precision"] = parse_precision(options["precision"])
    key = (model_name, kind, _options_key(options))
    with _cache_lock:
        backend = _cache.get(key)
        if backend is not None:
            _touch(backend)
            return backend
        lock = _key_locks.setdefault(key, threading.Lock())
    with lock:  # one creation per key; other keys (other models) are not blocked meanwhile
        backend = _cache.get(key)
        if backend is None:
            if kind == "auto":
                backend = best_available(model_name, **options)[0]
            elif options.get("precision") == "auto":
                backend = best_available(model_name, only=_expand(kind), **options)[0]
            else:
                backend = create_backend(model_name, kind, **options)
            _store(key, backend)  # dropped backends are not closed: a request may still be running on one
    return backend


def _expand(kind: str) -> List[str]:
    return {"torch": ["torch-cuda", "torch-cpu"], "onnx": ["onnx-gpu", "onnx-cpu"],
            "openvino": ["openvino-cpu"], "auto": list(KINDS)}.get(kind, [resolve_kind(kind)])


def _preference_order(prefer: Optional[Union[str, Sequence[str]]]) -> List[str]:
    wanted = [prefer] if isinstance(prefer, str) else list(prefer or [])
    order: List[str] = []
    for kind in wanted:
        for k in _expand(kind):
            if k not in order:
                order.append(k)
    return order + [k for k in KINDS if k not in order]


def best_available(model_name: str, prefer: Optional[Union[str, Sequence[str]]] = None, *,
                   only: Optional[Sequence[str]] = None, **options) -> Tuple[Backend, str]:
    """The first backend that loads, fastest kind first (KINDS order; `prefer` kinds go first, `only`
    restricts the kinds).

    With precision='auto' the candidates are (kind, precision) pairs in serve.precision's speed order,
    and a lower precision is only tried when its measured PSNR loss is within AUTO_MAX_LOSS_DB.
    Returns (backend, reason): a sentence saying what was chosen and why each faster choice was skipped.
    Raises the CheckpointError itself when a kind failed on the checkpoint, else BackendUnavailable.
    """
    precision = parse_precision(options.pop("precision", None))
    kinds = [k for k in _preference_order(prefer) if only is None or k in only]
    # fastest first (serve.precision.AUTO_ORDER); an explicit `prefer` keeps its kinds in front
    candidates = [c for k in kinds for c in auto_candidates([k])] if prefer else auto_candidates(kinds)
    if precision != "auto":
        candidates = [(k, p) for k, p in candidates if p == precision]
        if not candidates:
            raise BackendUnavailable(f"{model_name}: none of {', '.join(kinds)} runs {precision}")
    skipped: List[Tuple[str, Exception]] = []
    why_chosen = ""
    for kind, prec in candidates:
        label = kind if precision != "auto" else f"{kind} {prec}"
        try:
            if precision == "auto" and prec != "fp32":
                fp32 = options.get("onnx_path") or onnx_path_for(model_name, options.get("weights_path"),
                                                                 bool(options.get("mc")))
                loss, why = measured_loss(Path(fp32), kind, prec)
                if loss is None:
                    raise BackendUnavailable(why)
                if loss > AUTO_MAX_LOSS_DB:
                    raise BackendUnavailable(f"measured loss {why} is over auto's {AUTO_MAX_LOSS_DB} dB")
                why_chosen = (f": the fastest choice whose measured quality loss is within {AUTO_MAX_LOSS_DB} dB "
                              f"({why})")
            elif precision == "auto":
                why_chosen = ": exact fp32 (no faster lower precision qualified)"
            backend = get_backend(model_name, kind, **{**options, "precision": prec})
        except RECOVERABLE_ERRORS as exc:
            skipped.append((label, exc))
            continue
        reason = f"{model_name}: using {kind} ({backend.provider}){why_chosen}"
        notes = [f"{k}: {e}" for k, e in skipped] + list(getattr(backend, "skipped", []))
        if getattr(backend, "precision_note", ""):
            notes.append(backend.precision_note)
        if notes:
            reason += "; skipped " + "; ".join(notes)
        backend.selection_reason = reason
        return backend, reason
    checkpoint_errors = [e for _, e in skipped if isinstance(e, CheckpointError)]
    if checkpoint_errors:  # the weights are the problem, whichever runtimes are missing besides
        raise checkpoint_errors[0]
    raise BackendUnavailable(f"{model_name}: no backend could run it: " + "; ".join(f"{k}: {e}" for k, e in skipped))


def clear_cache() -> None:
    """Close and forget every cached backend (tests; freeing GPU memory before a model swap)."""
    with _cache_lock:
        backends = list(_cache.values())
        _cache.clear()
        _key_locks.clear()
    for backend in {id(b): b for b in backends}.values():
        backend.close()
