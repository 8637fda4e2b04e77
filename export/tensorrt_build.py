"""ONNX -> TensorRT engine, cached under a key that says exactly what the engine is for.

An engine only runs on the GPU model and TensorRT version that built it, and only for the
ONNX, precision and shape profile it was built from; all five go into the file name (see
engine_key), and the JSON sidecar repeats the key, so a stale or foreign engine is rebuilt
instead of loaded. TensorRT 10 takes FP16/BF16 as builder flags; TensorRT 11 dropped those
(strong typing only), so there FP16 is built from the half-precision ONNX variant.
"""
from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, NamedTuple, Optional, Tuple

from common import paths
from models.io import ModelIO
from serve.contract import ServeError
from serve.trt_runtime import TrtEngine, cuda_device_name, import_tensorrt  # serving's runtime checks new engines

from .artifacts import ExportError, file_sha256, read_json, resolve_spec, utc_now, write_json
from .mc import mc_io
from .onnx_export import check_onnx_for, ensure_onnx
from .parity import ParityError, max_abs_error, ort_session, run_ort

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "bf16")
# engine vs ONNX Runtime fp32, relative to max(1, |reference|): fp32 allows TF32 convs
ENGINE_TOLERANCE = {"fp32": 5e-3, "fp16": 2e-2, "bf16": 6e-2}

HW = Tuple[int, int]


def parse_hw(text: str, what: str = "size") -> HW:
    """'256x256' -> (256, 256): height x width, both positive."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or 0 in (int(match[1]), int(match[2])):
        raise ExportError(f"{what}: expected HEIGHTxWIDTH such as 256x256, got '{text}'")
    return int(match[1]), int(match[2])


def parse_batch(text: str) -> Tuple[int, int, int]:
    """'1,1,4' -> (1, 1, 4): min, opt, max batch (or MC samples)."""
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ExportError(f"--batch: expected MIN,OPT,MAX such as 1,1,4, got '{text}'")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


@dataclass(frozen=True)
class Profile:
    """The shape range an engine accepts: batch (min, opt, max) and H x W at min/opt/max."""
    batch: Tuple[int, int, int] = (1, 1, 4)
    min_hw: HW = (16, 16)
    opt_hw: HW = (256, 256)
    max_hw: HW = (1088, 1920)

    def __post_init__(self):
        heights, widths = zip(self.min_hw, self.opt_hw, self.max_hw)
        for label, (lo, mid, hi) in (("batch", self.batch), ("height", heights), ("width", widths)):
            if not 0 < lo <= mid <= hi:
                raise ExportError(f"profile {label} must satisfy 0 < min <= opt <= max, got {lo}/{mid}/{hi}")

    def points(self) -> Tuple[Tuple[int, int, int], ...]:
        """(n, h, w) at min, opt and max."""
        return tuple((n, *hw) for n, hw in zip(self.batch, (self.min_hw, self.opt_hw, self.max_hw)))

    def tag(self) -> str:
        hw = "-".join(f"{h}x{w}" for h, w in (self.min_hw, self.opt_hw, self.max_hw))
        return f"n{'-'.join(map(str, self.batch))}_{hw}"


def profile_shapes(io: ModelIO, profile: Profile) -> Dict[str, Tuple[Tuple[int, ...], ...]]:
    """Input name -> (min, opt, max) full shapes, for every input that has a dynamic dim."""
    return {t.name: tuple(t.concrete_shape(*point) for point in profile.points())
            for t in io.inputs if t.dynamic_axes}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def engine_key(gpu_name: str, trt_version: str, onnx_sha256: str, precision: str, profile: Profile) -> str:
    """Everything an engine is only valid for, as a file-name-safe string."""
    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {PRECISIONS}, not '{precision}'")
    return f"{_slug(gpu_name)}_trt{_slug(trt_version)}_onnx-{onnx_sha256[:16]}_{precision}_{profile.tag()}"


def engine_path(cache_dir: Optional[Path], model_file_stem: str, key: str) -> Path:
    return Path(cache_dir or paths.WEIGHTS_DIR / "trt") / f"{model_file_stem}.{key}.engine"


def engine_sidecar(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".json")


def engine_is_current(path: Path, key: str) -> bool:
    """True only for an engine whose sidecar carries `key` and the engine file's own hash."""
    record = read_json(engine_sidecar(path))
    return (Path(path).exists() and record is not None and record.get("key") == key
            and record.get("engine_sha256") == file_sha256(path))


def _timing_cache_path(cache_dir: Path, gpu: str, trt_version: str) -> Path:
    return cache_dir / f"timing.{_slug(gpu)}.trt{_slug(trt_version)}.cache"


def _source_onnx(trt, name: str, weights_path, onnx_file, mc: bool, precision: str) -> Tuple[Path, Path]:
    """(ONNX to build from, fp32 ONNX to check against)."""
    spec = resolve_spec(name)
    if onnx_file is not None:
        check_onnx_for(onnx_file, spec, mc=mc)
        reference = Path(onnx_file)
    else:
        reference = ensure_onnx(name, weights_path, mc=mc)
    if precision == "fp32" or hasattr(trt.BuilderFlag, precision.upper()):
        return reference, reference
    if precision == "bf16":
        raise ExportError(f"TensorRT {trt.__version__} has no BF16 builder flag (strong typing only); "
                          "use --fp16, or TensorRT 10 for BF16")
    if onnx_file is not None:
        raise ExportError(f"TensorRT {trt.__version__} builds FP16 from a half-precision ONNX; pass --weights "
                          "(not --onnx) so it can be exported")
    return ensure_onnx(name, weights_path, mc=mc, half=True), reference


def _use_timing_cache(config, path: Path) -> None:
    """Seed the build with tactic timings from earlier builds; a corrupt or foreign cache is
    dropped (it only costs build time), never allowed to fail the build."""
    try:
        cache = config.create_timing_cache(path.read_bytes() if path.exists() else b"")
        if cache is not None and config.set_timing_cache(cache, False):
            return
    except Exception as exc:  # TensorRT raises its own RuntimeError/TypeError flavours here
        log.warning("timing cache %s unreadable (%s)", path, exc)
    log.warning("starting a fresh timing cache instead of %s", path)
    config.set_timing_cache(config.create_timing_cache(b""), False)


def _build(trt, onnx_file: Path, io: ModelIO, precision: str, profile: Profile, workspace_gb: float,
           timing_cache: Path) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10+
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_file)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT could not parse {onnx_file.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision != "fp32" and hasattr(trt.BuilderFlag, precision.upper()):
        config.set_flag(getattr(trt.BuilderFlag, precision.upper()))
    shapes = profile_shapes(io, profile)
    trt_profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if tensor.name not in shapes:
            if any(d < 0 for d in tensor.shape):
                raise ExportError(f"{onnx_file.name}: dynamic input '{tensor.name}' is not in the model's contract")
            continue
        trt_profile.set_shape(tensor.name, *shapes[tensor.name])
    config.add_optimization_profile(trt_profile)
    _use_timing_cache(config, timing_cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT failed to build an engine from {onnx_file.name} (see its log above)")
    tmp = timing_cache.with_name(timing_cache.name + ".tmp")
    tmp.write_bytes(bytes(memoryview(config.get_timing_cache().serialize())))
    tmp.replace(timing_cache)
    return bytes(memoryview(serialized))


def check_engine(engine_file: Path, reference_onnx: Path, io: ModelIO, profile: Profile, precision: str) -> float:
    """Engine vs ONNX Runtime CPU at the profile's opt shape; returns the relative max error."""
    feeds = io.random_inputs(*profile.points()[1], seed=7)
    want = run_ort(ort_session(reference_onnx), feeds)
    try:
        got = TrtEngine(engine_file).infer(feeds)
    except ServeError as exc:
        raise ExportError(str(exc)) from None
    scale = max([1.0] + [float(abs(v).max()) for v in want.values()])
    error = max_abs_error(got, want) / scale
    tolerance = ENGINE_TOLERANCE[precision]
    if not error <= tolerance:
        raise ParityError(f"{engine_file.name}: {precision} engine differs from ONNX Runtime by {error:.3g} "
                          f"(relative), more than {tolerance:g}", {"opt": error})
    return error


class _Plan(NamedTuple):
    gpu: str
    source: Path      # the ONNX the engine is built from
    reference: Path   # the fp32 ONNX it is checked against
    io: ModelIO
    key: str
    path: Path


def _plan(trt, name: str, weights_path, onnx_file, mc: bool, precision: str, profile: Profile,
          cache_dir: Optional[Path]) -> _Plan:
    spec = resolve_spec(name)
    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {PRECISIONS}, not '{precision}'")
    try:
        gpu = cuda_device_name()
    except ServeError as exc:  # no GPU: an export error like any other
        raise ExportError(str(exc)) from None
    source, reference = _source_onnx(trt, name, weights_path, onnx_file, mc, precision)
    io = mc_io(spec, spec.build()) if mc else spec.io  # a fresh build only tells mask width and p
    key = engine_key(gpu, trt.__version__, file_sha256(source), precision, profile)
    return _Plan(gpu, source, reference, io, key, engine_path(cache_dir, source.stem, key))


def build_engine(name: str, *, weights_path: Optional[Path] = None, onnx_file: Optional[Path] = None,
                 mc: bool = False, precision: str = "fp32", profile: Profile = Profile(),
                 workspace_gb: float = 4.0, cache_dir: Optional[Path] = None, force: bool = False,
                 check: bool = True) -> Path:
    """The engine for `name` on this GPU: reused when its key matches, otherwise built, checked
    against ONNX Runtime at the opt shape (unless check=False) and cached with a sidecar."""
    trt = import_tensorrt()
    plan = _plan(trt, name, weights_path, onnx_file, mc, precision, profile, cache_dir)
    out = plan.path
    if not force and engine_is_current(out, plan.key):
        log.info("reusing TensorRT engine %s", out)
        return out
    log.info("building TensorRT engine %s (%s, profile %s)", out.name, precision, profile.tag())
    out.parent.mkdir(parents=True, exist_ok=True)
    engine = _build(trt, plan.source, plan.io, precision, profile, workspace_gb,
                    _timing_cache_path(out.parent, plan.gpu, trt.__version__))
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(engine)
    tmp.replace(out)
    try:
        error = check_engine(out, plan.reference, plan.io, profile, precision) if check else None
    except Exception:
        out.unlink(missing_ok=True)  # never leave an engine that failed its check where it would be reused
        raise
    write_json(engine_sidecar(out), {
        "key": plan.key, "model": name, "mc": mc, "gpu": plan.gpu, "tensorrt": trt.__version__,
        "precision": precision, "profile": asdict(profile),
        "onnx": {"path": str(plan.source), "sha256": file_sha256(plan.source)},
        "engine_sha256": file_sha256(out),
        "parity": {"opt_relative_error": error, "tolerance": ENGINE_TOLERANCE[precision]},
        "workspace_gb": workspace_gb, "created": utc_now()})
    return out
