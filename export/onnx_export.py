"""PyTorch checkpoint -> simplified ONNX with dynamic N/H/W, a metadata stamp and a JSON sidecar.

Uses the TorchScript-based exporter (dynamo=False): it needs no onnxscript, exports these
convnets in a fraction of a second and yields the same op set (Conv, LeakyRelu, Resize,
DepthToSpace, Add). The dynamo exporter also works for FlashSR but needs onnxscript and
~25x longer. Variants: standard, "_mc" (dropout masks as an input, see mc.py) and "_fp16"
(half-precision weights, fp32 I/O) for TensorRT 11, which has no FP16 builder flag.
"""
from __future__ import annotations

import copy
import logging
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import onnx
import torch
from torch import nn

from models import ModelSpec
from models.io import ModelIO
from models.mc_wrapper import MCDropoutWrapper
from models.registry import positional_module

from .artifacts import ExportError, file_sha256, load_source_model, resolve_spec, utc_now, write_json
from .mc import MC_GRAPH, check_mc_parity, mc_io, stochastic_nodes
from .onnx_files import MIN_OPSET, current_reason, onnx_path, onnx_sidecar_path, project_relative, read_onnx_record

__all__ = ["export_onnx", "ensure_onnx", "onnx_path", "onnx_sidecar_path", "read_onnx_record", "check_onnx_for",
           "read_metadata", "variant_name", "MIN_OPSET"]
from .parity import DEFAULT_ATOL, check_parity

log = logging.getLogger(__name__)

HALF_ATOL = 2e-2  # fp16 weights against the fp32 PyTorch model
META_PREFIX = "stsr."
_build_lock = threading.Lock()


class HalfPrecision(nn.Module):
    """Runs a copy of `module` in float16 behind float32 inputs and outputs."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = copy.deepcopy(module).half()

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.module(*(t.half() for t in inputs)).float()


def variant_name(mc: bool = False, half: bool = False) -> str:
    return "_".join(["mc"] * mc + ["fp16"] * half) or "standard"


def read_metadata(path: Path) -> Dict[str, str]:
    """The stsr.* stamp written into the ONNX file itself (survives a lost sidecar)."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ... depending on the damage
        raise ExportError(f"{path}: not a readable ONNX file ({type(exc).__name__}: {exc})") from None
    return {p.key[len(META_PREFIX):]: p.value for p in model.metadata_props if p.key.startswith(META_PREFIX)}


def check_onnx_for(path: Path, spec: ModelSpec, *, mc: bool = False, half: bool = False) -> Dict[str, str]:
    """Refuse an ONNX file that was exported from another model (or is another variant)."""
    path = Path(path)
    if not path.exists():
        raise ExportError(f"{path}: ONNX file not found")
    meta = read_metadata(path)
    if "model" not in meta:
        raise ExportError(f"{path}: carries no export stamp; re-export it with `python -m export onnx`")
    if meta["model"] != spec.name:
        raise ExportError(f"{path}: was exported from '{meta['model']}', not '{spec.name}'")
    want = variant_name(mc, half)
    if meta.get("variant") != want:
        raise ExportError(f"{path}: is the '{meta.get('variant')}' variant, '{want}' was expected")
    return meta


def _module_and_io(spec: ModelSpec, model: nn.Module, mc: bool) -> Tuple[nn.Module, ModelIO]:
    """The fp32 module to export for this variant and its tensor contract."""
    return (MCDropoutWrapper(model), mc_io(spec, model)) if mc else (positional_module(spec, model), spec.io)


def _torch_export(module: nn.Module, io: ModelIO, path: Path, opset: int) -> None:
    # batch 2 in the example so no size-1 broadcast gets baked in; every symbol is declared dynamic
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # legacy exporter notice, on purpose
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(module, io.example_args(n=2, h=32, w=32), str(path), dynamo=False,
                          input_names=list(io.input_names), output_names=list(io.output_names),
                          dynamic_axes=io.dynamic_axes(), opset_version=opset, do_constant_folding=True)


def _simplify(model: onnx.ModelProto, name: str) -> Tuple[onnx.ModelProto, bool]:
    try:
        import onnxslim

        slim = onnxslim.slim(model)
        if slim is None:
            raise RuntimeError("onnxslim's own output check failed")
        return slim, True
    except Exception as exc:  # a simplifier bug must not block an export that is otherwise valid
        log.warning("onnxslim could not simplify %s (%s: %s); keeping the unsimplified graph",
                    name, type(exc).__name__, exc)
        return model, False


def export_onnx(name: str, weights_path: Optional[Path] = None, out_dir: Optional[Path] = None,
                opset: int = MIN_OPSET, check: bool = True, *, mc: bool = False, half: bool = False) -> Path:
    """Export model `name` (shipped or given weights) and return the .onnx path.

    The file only replaces an existing one after the graph was checked (and, unless
    check=False, matched PyTorch), so a failed export never leaves a file ensure_onnx trusts.
    """
    spec = resolve_spec(name)
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old: use {MIN_OPSET} or newer")
    model, source, source_sha = load_source_model(spec, weights_path)
    reference, io = _module_and_io(spec, model, mc)
    module = HalfPrecision(reference).eval() if half else reference
    variant = variant_name(mc, half)
    out = onnx_path(name, out_dir, mc=mc, half=half)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as tmp_dir:
        tmp = Path(tmp_dir) / out.name
        try:
            _torch_export(module, io, tmp, opset)
        except Exception as exc:
            raise ExportError(f"torch.onnx.export failed for '{name}' ({type(exc).__name__}: {exc})") from exc
        graph, simplified = _simplify(onnx.load(str(tmp)), out.name)
        stochastic = stochastic_nodes(graph)
        if stochastic:
            raise ExportError(f"{out.name}: graph holds random ops {stochastic}; exports must be deterministic")
        stamp = {"model": name, "task": spec.task, "scale": str(spec.scale), "variant": variant,
                 "source_sha256": source_sha}
        onnx.helper.set_model_props(graph, {META_PREFIX + k: v for k, v in stamp.items()})
        try:
            onnx.checker.check_model(graph)
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"{out.name}: exported graph is not valid ONNX ({exc})") from None
        onnx.save(graph, str(tmp))
        parity, mask_effect = _parity(tmp, reference, spec, mc, half) if check else (None, None)
        tmp.replace(out)
    record = _record(spec, variant, out, source, source_sha, opset, io, simplified, parity)
    if mask_effect is not None:
        record["mask_effect"] = mask_effect
    if mc:
        record["mc_graph"] = MC_GRAPH
        # what serving draws the masks with (serve.uncertainty), readable without torch
        record["mc"] = {"mask_channels": int(model.mask_channels), "dropout_p": float(model.dropout_p)}
    write_json(onnx_sidecar_path(out), record)
    log.info("exported %s (%s) -> %s", name, variant, out)
    return out


def _parity(path: Path, reference: nn.Module, spec: ModelSpec, mc: bool, half: bool):
    """Parity against the fp32 module (an fp16 export is judged by what it approximates)."""
    atol = HALF_ATOL if half else DEFAULT_ATOL
    if mc:
        errors, effect = check_mc_parity(path, reference, spec, atol=atol)
        return {"atol": atol, "max_abs_error": errors}, effect
    errors = check_parity(path, reference, spec, atol=atol)
    if spec.recurrent_hidden and not half:  # a video SR step: also stream a clip through the recurrence
        from .vsr_parity import check_clip_parity

        errors.update(check_clip_parity(path, reference.model, atol=atol))
    return {"atol": atol, "max_abs_error": errors}, None


def _record(spec: ModelSpec, variant: str, out: Path, source: Path, source_sha: str, opset: int, io: ModelIO,
            simplified: bool, parity: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    import onnxruntime

    return {
        "model": spec.name, "task": spec.task, "scale": spec.scale, "variant": variant,
        "onnx": out.name, "sha256": file_sha256(out),
        "source": {"path": project_relative(source), "sha256": source_sha},
        "code_sha256": spec.code_fingerprint(variant.startswith("mc")),
        "opset": opset, "exporter": "torch.onnx (TorchScript)", "simplified": simplified,
        **io.describe(),
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        "parity": parity, "created": utc_now(),
    }


def ensure_onnx(name: str, weights_path: Optional[Path] = None, out_dir: Optional[Path] = None, *,
                mc: bool = False, half: bool = False, check: bool = True) -> Path:
    """The up-to-date export of `name`: reused when its sidecar names the current weights'
    SHA-256 and code fingerprint, otherwise (re)built, which is logged."""
    spec = resolve_spec(name)
    weights = Path(weights_path) if weights_path else spec.weights_path
    if not weights.exists():
        raise ExportError(f"model '{name}' has no weights at {weights} (train it with train/ first)")
    with _build_lock:
        out, reason = current_reason(name, weights, out_dir, mc=mc, half=half)
        if reason is None:
            return out
        log.info("building %s: %s", out, reason)
        return export_onnx(name, weights, out_dir, check=check, mc=mc, half=half)
