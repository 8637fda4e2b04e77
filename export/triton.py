"""A Triton Inference Server model repository for one model: ONNX Runtime and TensorRT backends.

Tensor names, types and dims are read from the exported ONNX itself, so the configs cannot
drift from the graph. When every tensor's first dim is the shared "batch" symbol, Triton owns
the batch dim (max_batch_size > 0, dims without it, dynamic batching); otherwise (the MC
variant: one image, K masks) max_batch_size is 0 and dims are full. tests/test_triton.py checks every
generated config against its ONNX graph (names, types, dims) and Triton's ModelConfig schema.

This repository is the path for GPU servers; it holds the bare networks (NCHW float32 in [0,1]), so
tiling, colour conversion and MC statistics are the client's job (serve.triton, by contrast, serves the
app's whole pipelines on this machine's CPU). Run it with NVIDIA's container (TensorRT plans must be
built on the serving GPU with that container's TensorRT version):

    python -m export triton --model flashsr_x4 --repo model_repository
    docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 \
        -v "$PWD/model_repository:/models" nvcr.io/nvidia/tritonserver:<yy.mm>-py3 \
        tritonserver --model-repository=/models
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import onnx

from common import paths

from .artifacts import ExportError, read_json, resolve_spec
from .onnx_export import check_onnx_for, ensure_onnx
from .tensorrt_build import Profile, engine_sidecar

log = logging.getLogger(__name__)

TRITON_TYPES = {
    onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.FLOAT16: "TYPE_FP16",
    onnx.TensorProto.BFLOAT16: "TYPE_BF16", onnx.TensorProto.DOUBLE: "TYPE_FP64",
    onnx.TensorProto.INT64: "TYPE_INT64", onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.INT8: "TYPE_INT8", onnx.TensorProto.UINT8: "TYPE_UINT8", onnx.TensorProto.BOOL: "TYPE_BOOL",
}
Tensor = Tuple[str, str, Tuple[object, ...]]  # (name, triton type, dims: int or symbol str)


def graph_tensors(model: onnx.ModelProto) -> Tuple[List[Tensor], List[Tensor]]:
    def describe(value) -> Tensor:
        kind = value.type.tensor_type
        if kind.elem_type not in TRITON_TYPES:
            raise ExportError(f"tensor '{value.name}': ONNX type {kind.elem_type} has no Triton equivalent")
        dims = tuple(d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in kind.shape.dim)
        return value.name, TRITON_TYPES[kind.elem_type], dims
    return [describe(v) for v in model.graph.input], [describe(v) for v in model.graph.output]


def _block(kind: str, tensors: Sequence[Tensor], drop_batch: bool) -> str:
    entries = []
    for name, dtype, dims in tensors:
        shown = dims[1:] if drop_batch else dims
        dim_text = ", ".join(str(d) if isinstance(d, int) else "-1" for d in shown)
        entries.append(f'  {{\n    name: "{name}"\n    data_type: {dtype}\n    dims: [ {dim_text} ]\n  }}')
    return f"{kind} [\n" + ",\n".join(entries) + "\n]\n"


def config_pbtxt(model_name: str, platform: str, inputs: Sequence[Tensor], outputs: Sequence[Tensor],
                 max_batch_size: int, filename: str, gpu_only: bool = False) -> str:
    batching = max_batch_size > 0 and all(dims and dims[0] == "batch" for _, _, dims in [*inputs, *outputs])
    text = (f'name: "{model_name}"\nplatform: "{platform}"\nmax_batch_size: {max_batch_size if batching else 0}\n'
            f'default_model_filename: "{filename}"\n')
    text += _block("input", inputs, batching) + _block("output", outputs, batching)
    if batching:
        text += "dynamic_batching { }\n"
    if gpu_only:
        text += "instance_group [\n  {\n    kind: KIND_GPU\n    count: 1\n  }\n]\n"
    return text


def write_triton_repo(name: str, repo_dir: Optional[Path] = None, *, weights_path: Optional[Path] = None,
                      onnx_file: Optional[Path] = None, engine_file: Optional[Path] = None, mc: bool = False,
                      max_batch_size: int = 8) -> List[Path]:
    """Write NAME_onnx/ (config + 1/model.onnx) and NAME_trt/ (config, + 1/model.plan when an
    engine is given: engines are GPU-specific, so build it on the serving GPU). Returns files written."""
    spec = resolve_spec(name)
    if onnx_file is not None:
        check_onnx_for(onnx_file, spec, mc=mc)
    source = Path(onnx_file) if onnx_file else ensure_onnx(name, weights_path, mc=mc)
    repo = Path(repo_dir or paths.WEIGHTS_DIR / "triton")
    inputs, outputs = graph_tensors(onnx.load(str(source), load_external_data=False))
    stem = source.stem
    written = []

    onnx_dir = repo / f"{stem}_onnx"
    (onnx_dir / "1").mkdir(parents=True, exist_ok=True)
    written.append(_write(onnx_dir / "config.pbtxt", config_pbtxt(
        f"{stem}_onnx", "onnxruntime_onnx", inputs, outputs, max_batch_size, "model.onnx")))
    written.append(Path(shutil.copyfile(source, onnx_dir / "1" / "model.onnx")))

    trt_dir = repo / f"{stem}_trt"
    (trt_dir / "1").mkdir(parents=True, exist_ok=True)
    engine_batch = Profile().batch[2]
    if engine_file is not None:
        record = read_json(engine_sidecar(engine_file)) or {}
        if record.get("model") != name or bool(record.get("mc")) != mc:
            raise ExportError(f"{engine_file}: its sidecar does not name '{name}' ({'MC' if mc else 'standard'})")
        engine_batch = record.get("profile", {}).get("batch", [1, 1, engine_batch])[2]
        written.append(Path(shutil.copyfile(engine_file, trt_dir / "1" / "model.plan")))
    else:
        log.warning("%s: no engine given; build one on the serving GPU (python -m export trt) and copy it to %s",
                    trt_dir.name, trt_dir / "1" / "model.plan")
    written.append(_write(trt_dir / "config.pbtxt", config_pbtxt(
        f"{stem}_trt", "tensorrt_plan", inputs, outputs, min(max_batch_size, engine_batch), "model.plan",
        gpu_only=True)))
    return written


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
