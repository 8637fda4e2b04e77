"""Inference runtime: backends (torch, ONNX Runtime, TensorRT) behind one interface, tiling, the SR pipeline.

What the app calls:
    from serve import upscale, get_backend, best_available
    result = upscale(decoded_image, "flashsr_x4", backend="auto", tile=256)   # -> UpscaleResult(image, info)
    from serve.colorize import colorize   # (a submodule: `serve.colorize` names the module, not the function)
    colorize(decoded_image, "colorize_lab", backend="auto")                 # -> ColorizeResult(image, info)
    backend = get_backend("flashsr_x4", "auto"); backend.run({"lr": nchw})["sr"]
    estimate_uncertainty(decoded_image, "flashsr_x2", passes=40)   # -> UncertaintyResult (MC-dropout maps)
Submodules load lazily so `import serve` stays cheap (no torch/onnxruntime until used).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "upscale": "sr", "UpscaleResult": "sr", "save_image": "sr",
    "interpolate_pair": "interpolate", "interpolate_video": "interpolate", "process_video": "video_job",
    "get_backend": "runtime", "best_available": "runtime", "create_backend": "runtime", "clear_cache": "runtime",
    "KINDS": "runtime",
    "Backend": "backends", "TorchBackend": "backends", "OrtBackend": "backends", "TrtBackend": "backends",
    "ServeError": "contract", "BackendUnavailable": "contract", "ModelMismatch": "contract", "InputError": "contract",
    "TilePlan": "tiling", "tiled_apply": "tiling", "plan_for": "tiling",
    "estimate_uncertainty": "uncertainty", "UncertaintyResult": "uncertainty",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'serve' has no attribute '{name}'")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
