"""The app's pipelines behind a real Triton Inference Server on this machine (CPU), through PyTriton.

    python -m serve.triton --setup        # once: numpy<2 for Triton's Python-backend stub (see below)
    python -m serve.triton [--models flashsr_x2,colorize_hint_cls] [--instances 2] [--max-batch 4]
                           [--host 127.0.0.1] [--http-port 8000] [--grpc-port 8001] [--metrics-port 8002]

`nvidia-pytriton` ships the `tritonserver` binary with its Python backend; each bound model's requests
are handed to the same serve.* functions the Gradio app calls (SR with tiling, colorization, frame
interpolation, MC-dropout uncertainty), so a Triton client gets the app's result for the same input.
Tensors (images are HxWxC uint8, C = 1, 3 or 4, as decoded from a file; results float32 in [0,1]):

    SR model (flashsr_x2, ...)     image [N,H,W,C] UINT8            -> image [N,sH,sW,C] FP32    dynamic batching
    colorize_lab                   image [N,H,W,C] UINT8            -> image [N,H,W,3|4] FP32    dynamic batching
    colorize_hint_cls              image [N,H,W,C] UINT8,           -> image [N,H,W,3|4] FP32    dynamic batching
                                   hint_ab [N,H,W,2] FP32, hint_mask [N,H,W,1] FP32 (both optional;
                                   a, b / 110 and 1 where hinted, at the image's size; zero = automatic)
      (both colorizers)            vividness [N,1] FP32 (optional, 1: colour strength, serve.colorize)
    flowinterp                     frame0, frame1 [H,W,C] UINT8,    -> frames [factor-1,H,W,3] FP32
                                   factor [1] INT32 (optional, 2)
    <sr model>_uncertainty         image [H,W,C] UINT8,             -> mean [sH,sW,3], std [sH,sW] FP32
                                   passes [1] INT32 (optional, 8)      (MC dropout; centre crop to 64-px patches)

Interpolation and uncertainty take no dynamic batching: each request is already one batched call
(factor-1 timesteps, K passes), and PyTriton fails every request of a batch when one of them is
refused. For the batched models a refusal mostly depends on the image's shape, and Triton batches only
requests of equal shapes, so a bad image never takes good ones down with it. The colorizers' optional
inputs are checked by value too (hint_ab within -1..1, vividness within 0..2.5, one entry per image): a
request with a bad one fails the requests Triton grouped with it, as PyTriton answers a batch with one
error. Clients that send those inputs should keep them in range.

Each model gets `--instances` instances (threads here; ONNX Runtime releases the GIL). Refused inputs
(over the pixel limit, too small, 5 channels) come back as an error whose last line is the app's own
message; Triton itself refuses wrong dtypes and ranks before they reach Python.

The stub: PyTriton 0.7 runs its proxy inside Triton's Python-backend stub, which is built against the
numpy 1.x C ABI; with numpy 2 its output tensors arrive empty and non-uint8 inputs garbled. The project
keeps numpy 2, so the stub gets its own numpy 1.26 (`--setup` puts it in STSR_TRITON_STUB_SITE, default
~/.cache/stsr/triton-stub) and the proxy model file is given that folder first on its path. This process keeps numpy 2.
That, and the proxy's handshake made robust on a busy machine, is `serve/triton_stub.py`.
"""
from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from models import get_spec

from .contract import REQUEST_ERRORS, InputError, error_message
from .triton_stub import check_stub, prepare_environment, setup_stub, stub_needs_numpy1

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("flashsr_x2", "flashsr_x4", "colorize_hint_cls", "colorize_lab", "flowinterp",
                  "flashsr_x2_uncertainty")
UNCERTAINTY_SUFFIX = "_uncertainty"
UNCERTAINTY_PATCH = 64  # the app's uncertainty tab crops to and ranks 64-px patches
DEFAULT_PASSES = 8


class RequestRefused(ValueError):
    """What a Triton client sees as the last line of a refused request: the pipeline's own message."""


@dataclass
class ServerOptions:
    models: Sequence[str] = DEFAULT_MODELS
    instances: int = 2
    max_batch: int = 4
    queue_delay_us: int = 2000
    backend: str = "auto"
    tile: int = 256
    threads: Optional[int] = None  # ONNX Runtime intra-op threads per session (None: ORT's default)
    max_input_pixels: int = 2_000_000  # the CPU app's SR input limit
    max_output_pixels: int = 16_000_000
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    log_file: Optional[Path] = None
    backend_options: Dict[str, object] = field(default_factory=dict)

    def __post_init__(self):
        if self.instances < 1 or self.max_batch < 1:
            raise ValueError(f"instances and max_batch must be >= 1 (got {self.instances}, {self.max_batch})")
        if self.threads:
            self.backend_options = {**self.backend_options, "threads": self.threads}


def _refusing(infer: Callable) -> Callable:
    """A refused request raises RequestRefused with the pipeline's message (no pipeline traceback)."""

    @functools.wraps(infer)
    def guarded(requests):
        try:
            return infer(requests)
        except REQUEST_ERRORS as exc:
            message = error_message(exc)
        raise RequestRefused(message)
    return guarded


def _scalar(request, name: str, default: int) -> int:
    value = request.data.get(name)
    return default if value is None else int(np.asarray(value).reshape(-1)[0])


def sr_infer(model: str, opts: ServerOptions) -> Callable:
    from .sr import upscale

    def one(image: np.ndarray) -> np.ndarray:
        return upscale(image, model, opts.backend, tile=opts.tile, max_input_pixels=opts.max_input_pixels,
                       max_output_pixels=opts.max_output_pixels, **opts.backend_options).image

    return _refusing(lambda requests: [{"image": np.stack([one(im) for im in r["image"]])} for r in requests])


def colorize_infer(model: str, opts: ServerOptions) -> Callable:
    from .colorize import colorize

    def one(image: np.ndarray, hint_maps=None, vividness=None) -> np.ndarray:
        return colorize(image, model, opts.backend, max_input_pixels=opts.max_input_pixels, hint_maps=hint_maps,
                        vividness=vividness, **opts.backend_options).image

    def request(r) -> Dict[str, np.ndarray]:
        images = r["image"]
        hint_ab, hint_mask, vivid = r.data.get("hint_ab"), r.data.get("hint_mask"), r.data.get("vividness")
        if (hint_ab is None) != (hint_mask is None):
            raise InputError("send hint_ab and hint_mask together (or neither, for automatic colour)")
        if hint_ab is not None and not len(hint_ab) == len(hint_mask) == len(images):
            raise InputError("hint_ab and hint_mask need one entry per image of the request")
        if vivid is not None and np.asarray(vivid).reshape(-1).size != len(images):
            raise InputError("vividness needs one value per image of the request")
        hints = [None] * len(images) if hint_ab is None else list(zip(hint_ab, hint_mask))
        vivid = [None] * len(images) if vivid is None else [float(v) for v in np.asarray(vivid).reshape(-1)]
        return {"image": np.stack([one(im, h, v) for im, h, v in zip(images, hints, vivid)])}

    return _refusing(lambda requests: [request(r) for r in requests])


def interpolate_infer(model: str, opts: ServerOptions) -> Callable:
    from .interpolate import interpolate_pair

    def one(request) -> Dict[str, np.ndarray]:
        frames = interpolate_pair(request["frame0"], request["frame1"], model, _scalar(request, "factor", 2),
                                  opts.backend, max_pixels=opts.max_input_pixels, **opts.backend_options)
        return {"frames": np.stack(frames)}

    return _refusing(lambda requests: [one(r) for r in requests])


def uncertainty_infer(model: str, opts: ServerOptions) -> Callable:
    from .uncertainty import estimate_uncertainty

    def one(request) -> Dict[str, np.ndarray]:
        result = estimate_uncertainty(request["image"], model, _scalar(request, "passes", DEFAULT_PASSES),
                                      opts.backend, "mc", patch=UNCERTAINTY_PATCH,
                                      max_input_pixels=opts.max_input_pixels,
                                      max_output_pixels=opts.max_output_pixels, **opts.backend_options)
        return {"mean": result.mean_prediction, "std": result.std_map}

    return _refusing(lambda requests: [one(r) for r in requests])


@dataclass
class Binding:
    name: str
    make_infer: Callable[[], Callable]  # one call per instance (PyTriton keys instances by callable)
    inputs: list
    outputs: list
    batching: bool


def binding_for(name: str, opts: ServerOptions) -> Binding:
    """The Triton model for a registry name (or '<sr model>_uncertainty')."""
    from pytriton.model_config import Tensor

    image_in = Tensor(name="image", dtype=np.uint8, shape=(-1, -1, -1))
    if name.endswith(UNCERTAINTY_SUFFIX):
        model = name[: -len(UNCERTAINTY_SUFFIX)]
        spec = get_spec(model)
        if spec.task != "sr" or not spec.mc_dropout:
            raise ValueError(f"'{name}': {model} is not an SR model with MC dropout")
        return Binding(name, lambda: uncertainty_infer(model, opts),
                       [image_in, Tensor(name="passes", dtype=np.int32, shape=(1,), optional=True)],
                       [Tensor(name="mean", dtype=np.float32, shape=(-1, -1, 3)),
                        Tensor(name="std", dtype=np.float32, shape=(-1, -1))], batching=False)
    spec = get_spec(name)
    if spec.task == "interpolate":
        frame = dict(dtype=np.uint8, shape=(-1, -1, -1))
        return Binding(name, lambda: interpolate_infer(name, opts),
                       [Tensor(name="frame0", **frame), Tensor(name="frame1", **frame),
                        Tensor(name="factor", dtype=np.int32, shape=(1,), optional=True)],
                       [Tensor(name="frames", dtype=np.float32, shape=(-1, -1, -1, 3))], batching=False)
    make = {"sr": sr_infer, "colorize": colorize_infer}.get(spec.task)
    if make is None:
        raise ValueError(f"'{name}' is a {spec.task} model; Triton serves sr, colorize and interpolate models")
    hint_in = [Tensor(name="hint_ab", dtype=np.float32, shape=(-1, -1, 2), optional=True),
               Tensor(name="hint_mask", dtype=np.float32, shape=(-1, -1, 1), optional=True)] if spec.hint_inputs else []
    vivid_in = [Tensor(name="vividness", dtype=np.float32, shape=(1,), optional=True)] if spec.vividness_input else []
    return Binding(name, lambda: make(name, opts), [image_in] + hint_in + vivid_in,
                   [Tensor(name="image", dtype=np.float32, shape=(-1, -1, -1))], batching=True)


def warm_up(bindings: Sequence[Binding]) -> None:
    """One tiny request per model before serving: ONNX files exported and sessions built now, not on request 1."""
    from pytriton.proxy.types import Request

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (UNCERTAINTY_PATCH, UNCERTAINTY_PATCH, 3), dtype=np.uint8)
    for binding in bindings:
        started = time.perf_counter()
        infer = binding.make_infer()
        if binding.name.endswith(UNCERTAINTY_SUFFIX):
            data = {"image": image, "passes": np.array([2], np.int32)}
        elif "frame0" in [t.name for t in binding.inputs]:
            data = {"frame0": image, "frame1": image[::-1].copy()}
        else:
            data = {"image": image[None, :32, :32]}
        infer([Request(data=data)])
        log.info("%s: warmed up in %.2f s", binding.name, time.perf_counter() - started)


def triton_config(opts: ServerOptions):
    from pytriton.triton import TritonConfig

    return TritonConfig(http_address=opts.host, http_port=opts.http_port, grpc_address=opts.host,
                        grpc_port=opts.grpc_port, metrics_address=opts.host, metrics_port=opts.metrics_port,
                        log_file=opts.log_file)


def bind_all(triton, bindings: Sequence[Binding], opts: ServerOptions) -> None:
    from pytriton.model_config import DynamicBatcher, ModelConfig

    for b in bindings:
        config = (ModelConfig(max_batch_size=opts.max_batch,
                              batcher=DynamicBatcher(max_queue_delay_microseconds=opts.queue_delay_us))
                  if b.batching else ModelConfig(batching=False))
        triton.bind(model_name=b.name, infer_func=[b.make_infer() for _ in range(opts.instances)],
                    inputs=b.inputs, outputs=b.outputs, config=config, strict=True)


def serve(opts: ServerOptions, *, ready: Optional[Callable[[], None]] = None) -> None:
    """Start Triton with every model of `opts` bound and block until SIGINT/SIGTERM."""
    prepare_environment(check_stub())
    bindings = [binding_for(name, opts) for name in opts.models]
    warm_up(bindings)
    from pytriton.triton import Triton

    def stop_on_term(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop_on_term)
    try:
        with Triton(config=triton_config(opts)) as triton:
            bind_all(triton, bindings, opts)
            triton.run()
            print(f"serving {', '.join(b.name for b in bindings)} on http://{opts.host}:{opts.http_port} "
                  f"(gRPC {opts.grpc_port}, metrics {opts.metrics_port}); {opts.instances} instance(s) each",
                  flush=True)
            if ready:
                ready()
            triton.serve()
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m serve.triton", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setup", action="store_true", help="install numpy<2 for the stub (once) and exit")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS),
                   help="comma-separated registry names; '<sr model>_uncertainty' for MC-dropout maps")
    p.add_argument("--instances", type=int, default=2, help="model instances (threads) per model")
    p.add_argument("--max-batch", type=int, default=4, help="dynamic batching: most requests per batch")
    p.add_argument("--queue-delay-us", type=int, default=2000, help="dynamic batching: longest wait for a batch")
    p.add_argument("--backend", default="auto", help="auto, torch, onnx or a kind from serve.runtime.KINDS")
    p.add_argument("--tile", type=int, default=256, help="SR tile side in input pixels (0: whole image)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads per session")
    p.add_argument("--max-input-pixels", type=int, default=2_000_000)
    p.add_argument("--max-output-pixels", type=int, default=16_000_000)
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve other machines")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--log-file", type=Path, default=None, help="tritonserver's log (default: this console)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.setup:
        if not stub_needs_numpy1():
            print(f"numpy {np.__version__} already fits the stub; nothing to install")
            return 0
        try:
            print(f"numpy<2 for the Triton stub already in {check_stub()}")
        except RuntimeError:
            print(f"numpy<2 for the Triton stub installed in {setup_stub()}")
        return 0
    opts = ServerOptions(models=[m.strip() for m in args.models.split(",") if m.strip()], instances=args.instances,
                         max_batch=args.max_batch, queue_delay_us=args.queue_delay_us, backend=args.backend,
                         tile=args.tile, threads=args.threads, max_input_pixels=args.max_input_pixels,
                         max_output_pixels=args.max_output_pixels, host=args.host, http_port=args.http_port,
                         grpc_port=args.grpc_port, metrics_port=args.metrics_port, log_file=args.log_file)
    try:
        serve(opts)
    except (RuntimeError, ValueError, KeyError) as exc:
        print(f"error: {error_message(exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
