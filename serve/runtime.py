"""Choosing, creating and caching backends: one session/engine per (model, backend kind, options).

Kinds, fastest first (the order `best_available` tries them in):
    trt         TensorRT engine (export/ builds it on first use and caches it under weights/trt/)
    onnx-gpu    ONNX Runtime on its TensorRT or CUDA provider
    torch-cuda  PyTorch on CUDA (fp16 optional)
    onnx-cpu    ONNX Runtime on CPU
    torch-cpu   PyTorch on CPU
Aliases: 'torch' (CUDA if available, else CPU), 'onnx' (ORT with TensorRT -> CUDA -> CPU, first that
loads), 'auto' (best_available). Creating a session costs seconds (an ORT-TensorRT engine build:
minutes), so every caller goes through `get_backend`, which creates each one once, under a lock.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from models import CheckpointError, get_spec
from models.checkpoint import file_sha256

from .backends import (GPU_PROVIDERS, Backend, BackendUnavailable, OrtBackend, ServeError, TorchBackend, TrtBackend,
                       cache_dir, cuda_available, module_available)

KINDS = ("trt", "onnx-gpu", "torch-cuda", "onnx-cpu", "torch-cpu")
ALIASES = ("torch", "onnx", "auto")
RECOVERABLE_ERRORS = (ServeError, CheckpointError, ImportError, OSError)  # "this kind cannot run", not a bug

_cache: Dict[Tuple, Backend] = {}
_cache_lock = threading.Lock()
_key_locks: Dict[Tuple, threading.Lock] = {}


def resolve_kind(kind: str) -> str:
    """Map an alias to a concrete kind ('auto' stays: it is resolved by best_available)."""
    if kind == "torch":
        return "torch-cuda" if cuda_available() else "torch-cpu"
    if kind in KINDS or kind in ("onnx", "auto"):
        return kind
    raise ValueError(f"unknown backend '{kind}'; use one of {', '.join(KINDS + ALIASES)}")


def onnx_path_for(model_name: str, weights_path: Optional[Union[str, Path]] = None, mc: bool = False) -> Path:
    """The model's ONNX file, exported by export/ once and again only when the weights change.

    Shipped weights export to weights/onnx/; any other checkpoint (benchmarks, tests) to the serve
    cache, one folder per checkpoint checksum, so it never overwrites the shipped model's file.
    mc=True: the Monte-Carlo dropout variant NAME_mc.onnx.
    """
    try:
        from export.artifacts import ExportError
        from export.onnx_export import ensure_onnx
    except ImportError as exc:
        raise BackendUnavailable(f"ONNX export is unavailable ({exc}); pass onnx_path=...") from None
    weights = Path(weights_path) if weights_path else get_spec(model_name).weights_path
    if not weights.exists():
        raise CheckpointError(f"model '{model_name}' has no weights at {weights} (train it with train/ first)")
    out_dir = None if weights_path is None else cache_dir() / "onnx" / file_sha256(weights)[:16]
    try:
        return Path(ensure_onnx(model_name, weights, out_dir, mc=mc))
    except ExportError as exc:
        raise ServeError(f"could not export '{model_name}' to ONNX: {exc}") from None


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
                   mc: bool = False) -> Backend:
    """A new backend of a concrete kind (or 'torch'/'onnx'); raises BackendUnavailable when it cannot run here.

    fp16 applies on GPU only (torch-cuda, ORT's TensorRT provider); `threads` sets ORT's intra-op
    pool (torch's pool is process-wide: set it with torch.set_num_threads). mc=True loads the
    Monte-Carlo dropout variant (dropout masks as an input; serve.uncertainty uses it).
    """
    kind = resolve_kind(kind)
    if kind == "auto":
        raise ValueError("create_backend needs a concrete kind; use best_available for 'auto'")
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
    providers = {"onnx": "auto", "onnx-gpu": "gpu", "onnx-cpu": "cpu"}[kind]
    if providers == "gpu":
        import onnxruntime as ort

        if not set(GPU_PROVIDERS) & set(ort.get_available_providers()):
            raise BackendUnavailable("onnxruntime has no GPU provider here (install onnxruntime-gpu); available: "
                                     + ", ".join(ort.get_available_providers()))
    path = onnx_path or onnx_path_for(model_name, weights_path, mc)
    return OrtBackend(model_name, path, providers=providers, threads=threads, trt_fp16=fp16, mc=mc)


def _options_key(options: Dict[str, Any]) -> Tuple:
    """Hashable options, with defaults (None/False) dropped so fp16=False and no fp16 share a backend."""
    return tuple(sorted((k, str(v) if isinstance(v, Path) else v) for k, v in options.items()
                        if v is not None and v is not False))


def get_backend(model_name: str, kind: str = "auto", **options) -> Backend:
    """The cached backend for (model, kind, options), created on first use; safe to call from many threads."""
    get_spec(model_name)  # unknown names fail here, not inside a runtime
    kind = resolve_kind(kind)
    key = (model_name, kind, _options_key(options))
    backend = _cache.get(key)
    if backend is not None:
        return backend
    with _cache_lock:
        lock = _key_locks.setdefault(key, threading.Lock())
    with lock:  # one creation per key; other keys (other models) are not blocked meanwhile
        backend = _cache.get(key)
        if backend is None:
            if kind == "auto":
                backend = best_available(model_name, **options)[0]
            else:
                backend = create_backend(model_name, kind, **options)
            _cache[key] = backend
    return backend


def _preference_order(prefer: Optional[Union[str, Sequence[str]]]) -> List[str]:
    wanted = [prefer] if isinstance(prefer, str) else list(prefer or [])
    order: List[str] = []
    for kind in wanted:
        expanded = {"torch": ["torch-cuda", "torch-cpu"], "onnx": ["onnx-gpu", "onnx-cpu"], "auto": list(KINDS)}
        for k in expanded.get(kind, [resolve_kind(kind)]):
            if k not in order:
                order.append(k)
    return order + [k for k in KINDS if k not in order]


def best_available(model_name: str, prefer: Optional[Union[str, Sequence[str]]] = None,
                   **options) -> Tuple[Backend, str]:
    """The first backend that loads, fastest kind first (KINDS order; `prefer` kinds go first).

    Returns (backend, reason): a sentence saying what was chosen and why each faster kind was skipped.
    Raises the CheckpointError itself when a kind failed on the checkpoint, else BackendUnavailable.
    """
    skipped: List[Tuple[str, Exception]] = []
    for kind in _preference_order(prefer):
        try:
            backend = get_backend(model_name, kind, **options)
        except RECOVERABLE_ERRORS as exc:
            skipped.append((kind, exc))
            continue
        reason = f"{model_name}: using {kind} ({backend.provider})"
        notes = [f"{k}: {e}" for k, e in skipped] + list(getattr(backend, "skipped", []))
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
