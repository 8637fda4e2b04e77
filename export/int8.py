"""int8 (static QDQ) exports of the SR models, each with its measured quality change.

    python -m export int8 --model flashsr_x4 [--mc] | --all

ONNX Runtime's quantize_static turns weights/onnx/NAME.onnx into NAME.int8.onnx: the convolutions get
per-channel int8 weights in 7 bits (`reduce_range`: on a CPU without VNNI/AMX full 8-bit weights
saturate ONNX Runtime's 16-bit pair sums, up to 0.38 dB lost; common/cpu.py) and uint8 activations
with Percentile ranges from crops of $STSR_DATA/train (never a benchmark); the convs that read and
write the image stay fp32 (see image_convs).
The same file runs on ONNX Runtime's CPU provider and on OpenVINO. The sidecar NAME.int8.onnx.json
records the calibration images and the Y-PSNR change against the fp32 graph on a disjoint set of
held-out TRAINING images, per runtime; a model that loses more than MAX_LOSS_DB there is refused
(no .int8.onnx, the sidecar says why). bf16 needs no file (an OpenVINO compile hint), but its change
on the same held-out crops is recorded in NAME.bf16.json so serve's `precision='auto'` can weigh it.
Only SR models are quantized: the check needs SR's metric, and other tasks are refused with that reason.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from common.cpu import cpu_flags
from common.paths import data_root
from common.resize import bicubic_downscale, mod_crop
from models import ModelSpec, load_model
from models.io import MASKS_INPUT
from models.registry import DEFAULT_STRENGTH

from .artifacts import ExportError, file_sha256, read_json, resolve_spec, utc_now, write_json
from .onnx_export import META_PREFIX, ensure_onnx, onnx_path
from .onnx_files import low_precision_path, record_path

log = logging.getLogger(__name__)

MAX_LOSS_DB = 0.1
CALIBRATION_IMAGES, HELD_OUT_IMAGES, LR_CROP, MC_SAMPLES = 64, 24, 64, 8
Runner = Callable[[Dict[str, np.ndarray]], np.ndarray]
__all__ = ["quantize_model", "read_int8_record", "low_precision_path", "record_path", "MAX_LOSS_DB"]


def split_training_images(seed: int = 0, calibration: int = CALIBRATION_IMAGES, held_out: int = HELD_OUT_IMAGES,
                          min_side: int = LR_CROP * 4) -> Tuple[List[Path], List[Path]]:
    """(calibration, held-out): disjoint, deterministic subsets of the $STSR_DATA/train images whose short
    side is at least `min_side` (every crop the same size: calibration histograms need one shape)."""
    from PIL import Image

    from common.images import list_images

    root = data_root() / "train"
    files = []
    for path in list_images(root) if root.is_dir() else []:
        with Image.open(path) as im:  # reads the header only
            if min(im.size) >= min_side:
                files.append(path)
    if len(files) < calibration + held_out:
        raise ExportError(f"{root}: needs at least {calibration + held_out} training images for int8 calibration "
                          f"and its held-out check, found {len(files)} (set STSR_DATA)")
    step = len(files) // held_out
    held = files[step // 2::step][:held_out]  # spread over every training folder
    rest = [f for f in files if f not in set(held)]
    picks = np.random.default_rng(seed).choice(len(rest), calibration, replace=False)
    return [rest[i] for i in sorted(picks)], held


def sr_crops(files: List[Path], scale: int, seed: int, lr_crop: int = LR_CROP) -> List[Tuple[np.ndarray, np.ndarray]]:
    """One (LR 1x3xhxw, HR hxwx3) crop per image: random HR window, bicubic-downscaled (the benchmark's LR)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pairs = []
    for path in files:
        with Image.open(path) as im:
            hr = np.asarray(im.convert("RGB"), np.float32) / 255.0
        side = lr_crop * scale  # split_training_images only keeps images this large
        y, x = (int(rng.integers(0, n - side + 1)) for n in hr.shape[:2])
        crop = mod_crop(hr[y:y + side, x:x + side], scale)
        lr = bicubic_downscale(crop, scale)
        pairs.append((np.ascontiguousarray(lr.transpose(2, 0, 1)[None]), crop))
    return pairs


def _feeds(spec: ModelSpec, lr: np.ndarray, masks: Optional[np.ndarray]) -> Dict[str, np.ndarray]:
    feeds = {spec.io.image_inputs[0].name: lr}
    if masks is not None:
        feeds[MASKS_INPUT] = masks
    if spec.strength_input:  # real-photo models: calibrated and measured at the default strength
        feeds["strength"] = np.full((lr.shape[0], 1), DEFAULT_STRENGTH, np.float32)
    return feeds


def _mean_prediction(out: np.ndarray) -> np.ndarray:
    """Model output (K,3,H,W) -> HxWx3 in [0,1]: the mean over K (K=1 for the plain model)."""
    return np.clip(out, 0.0, 1.0).mean(axis=0).transpose(1, 2, 0)


def measure(spec: ModelSpec, runners: Dict[str, Runner], pairs, masks: Optional[np.ndarray]) -> Dict[str, float]:
    """Mean Y-PSNR (BT.601, `scale` px border crop) of each runner over the held-out crops."""
    from common.metrics import psnr_y

    totals = {name: 0.0 for name in runners}
    for lr, hr in pairs:
        feeds = _feeds(spec, lr, masks)
        for name, run in runners.items():
            totals[name] += psnr_y(_mean_prediction(run(feeds)), hr, crop=spec.scale)
    return {name: total / len(pairs) for name, total in totals.items()}


def _ort_runner(path: Path) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, feeds)[0]


def _openvino_runner(path: Path, hint: str) -> Optional[Runner]:
    """An OpenVINO CPU runner at `hint` ('f32' / 'bf16'), or None when OpenVINO (or bf16) is unavailable."""
    try:
        import openvino as ov
    except ImportError:
        return None
    core = ov.Core()
    if hint == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return None
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": hint})
    return lambda feeds: compiled(feeds)[0]


def image_convs(model) -> List[str]:
    """Convs that read or write the image itself (the first Conv, the last, any feeding DepthToSpace):
    kept fp32.

    Measured on flashsr_x2 (24 held-out training crops, 8-bit weights, AMX CPU): quantizing every op
    with MinMax ranges lost 0.114 dB; Conv only, 0.084; Conv only without the upsampler conv, 0.068;
    the same with Percentile (99.999%) ranges, 0.032 dB. With 7-bit weights (reduce_range) on an AVX2
    CPU: 0.104 dB, and 0.055 with the first conv (3 input channels, cheap) kept fp32 as well.
    """
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    feeds_d2s = {i for n in model.graph.node if n.op_type == "DepthToSpace" for i in n.input}
    keep = [n.name for n in convs if set(n.output) & feeds_d2s]
    for end in convs[:1] + convs[-1:]:
        if end.name not in keep:
            keep.append(end.name)
    return keep


def _quantize(fp32: Path, out: Path, spec: ModelSpec, calibration, masks: Optional[np.ndarray]) -> None:
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._feeds = iter([_feeds(spec, lr, masks) for lr, _ in calibration])

        def get_next(self):
            return next(self._feeds, None)

    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".int8-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        # symbolic shape inference cannot resolve the dynamic H/W through Resize; ONNX's own inference can
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(Path(tmp) / out.name), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.Percentile, op_types_to_quantize=["Conv"],
                        nodes_to_exclude=image_convs(onnx.load(str(pre), load_external_data=False)))
        model = onnx.load(str(Path(tmp) / out.name))
        props = {p.key: p.value for p in onnx.load(str(fp32), load_external_data=False).metadata_props}
        props[META_PREFIX + "precision"] = "int8"
        onnx.helper.set_model_props(model, props)
        onnx.save(model, str(Path(tmp) / out.name))
        (Path(tmp) / out.name).replace(out)


def mc_masks(name: str, mc: bool, seed: int) -> Optional[np.ndarray]:
    """The fixed dropout masks an MC variant is measured with (None for the standard graph)."""
    if not mc:
        return None
    from models.mc_dropout import sample_masks

    model = load_model(name)
    return sample_masks(MC_SAMPLES, int(model.mask_channels), float(model.dropout_p), seed)


def held_out_psnr(spec: ModelSpec, fp32: Path, quantized: Path, held, masks: Optional[np.ndarray]) -> Dict[str, float]:
    """Mean Y-PSNR on the held-out crops of the fp32 graph and of the int8 file on ONNX Runtime and
    OpenVINO (and of OpenVINO bf16 on the fp32 graph where the CPU has bf16), keyed by runtime label."""
    runners: Dict[str, Runner] = {"fp32": _ort_runner(fp32), "onnxruntime": _ort_runner(quantized)}
    for label, path, hint in (("openvino", quantized, "f32"), ("openvino bf16", fp32, "bf16")):
        runner = _openvino_runner(path, hint)
        if runner is not None:
            runners[label] = runner
    return measure(spec, runners, held, masks)


def quantize_model(name: str, *, mc: bool = False, seed: int = 0, max_loss_db: float = MAX_LOSS_DB,
                   out_dir: Optional[Path] = None, calibration: int = CALIBRATION_IMAGES,
                   held_out: int = HELD_OUT_IMAGES) -> Dict[str, Any]:
    """Write NAME[_mc].int8.onnx (or refuse it) and NAME[_mc].bf16.json beside the fp32 export (weights/onnx
    or `out_dir`); returns the int8 record. `calibration` / `held_out`: how many training images each uses."""
    spec = resolve_spec(name)
    fp32 = onnx_path(name, out_dir, mc=mc)
    out, sidecar = low_precision_path(fp32, "int8"), record_path(fp32, "int8")
    if spec.task != "sr":
        record = {"model": name, "precision": "int8", "refused": True, "created": utc_now(),
                  "reason": f"'{name}' is a {spec.task} model: int8 is only built for SR models, whose quality "
                            "check (Y-PSNR on held-out training crops) applies"}
        if fp32.exists():
            record["source_onnx_sha256"] = file_sha256(fp32)
            out.unlink(missing_ok=True)
            write_json(sidecar, record)
        return record
    fp32 = ensure_onnx(name, out_dir=out_dir, mc=mc)
    calibration_files, held_files = split_training_images(seed, calibration, held_out)
    calibration = sr_crops(calibration_files, spec.scale, seed)
    held = sr_crops(held_files, spec.scale, seed + 1)
    masks = mc_masks(name, mc, seed)
    out.unlink(missing_ok=True)
    _quantize(fp32, out, spec, calibration, masks)
    psnr = held_out_psnr(spec, fp32, out, held, masks)
    change = {k: round(float(v - psnr["fp32"]), 4) for k, v in psnr.items() if k not in ("fp32", "openvino bf16")}
    worst = min(change.values())
    refused = bool(worst < -max_loss_db)
    root = data_root()
    common = {
        "model": name, "variant": "mc" if mc else "standard", "source_onnx": fp32.name,
        "source_onnx_sha256": file_sha256(fp32), "metric": f"Y-PSNR (BT.601, {spec.scale} px border crop) vs the "
        f"HR crop{f', mean of {MC_SAMPLES} MC-dropout samples' if mc else ''}, mean over held-out crops",
        "held_out": {"count": len(held_files), "lr_crop": LR_CROP, "seed": seed + 1,
                     "images": [str(p.relative_to(root)) for p in held_files]},
        "psnr_fp32_db": round(psnr["fp32"], 4), "created": utc_now(), "measured_on_cpu_flags": list(cpu_flags()),
    }
    record = {**common, "precision": "int8", "onnx": out.name, "max_loss_db": max_loss_db,
              "calibration": {"method": "Percentile 99.999", "format": "QDQ, per-channel int8 weights in 7 bits "
                              "(reduce_range), uint8 activations; Conv only, the convs reading and writing "
                              "the image stay fp32",
                              "reduce_range": True,
                              "count": len(calibration_files), "lr_crop": LR_CROP, "seed": seed,
                              "images": [str(p.relative_to(root)) for p in calibration_files]},
              "psnr_change_db": change, "refused": refused}
    if refused:
        record["reason"] = (f"int8 loses {-worst:.3f} dB Y-PSNR on {len(held_files)} held-out training crops, "
                            f"over the {max_loss_db} dB limit")
        out.unlink(missing_ok=True)
    else:
        record["sha256"] = file_sha256(out)
    write_json(sidecar, record)
    bf16_path = record_path(fp32, "bf16")
    if "openvino bf16" in psnr:
        write_json(bf16_path, {**common, "precision": "bf16",
                               "psnr_change_db": {"openvino": round(float(psnr["openvino bf16"] - psnr["fp32"]), 4)}})
        record["bf16_change_db"] = round(float(psnr["openvino bf16"] - psnr["fp32"]), 4)
    elif (read_json(bf16_path) or {}).get("source_onnx_sha256") != common["source_onnx_sha256"]:
        # no bf16 on this CPU: an honest record for this export (auto then skips bf16: nothing measured)
        # instead of a stale one; a record of this same export measured elsewhere is kept
        write_json(bf16_path, {**common, "precision": "bf16", "psnr_change_db": {},
                               "not_measured": "this CPU has no native bf16; re-run `python -m export int8` on one"})
    log.info("%s: int8 %s (%s)", out.name, "refused" if refused else "written", change)
    return record


def read_int8_record(name: str, mc: bool = False) -> Optional[Dict[str, Any]]:
    return read_json(record_path(onnx_path(name, mc=mc), "int8"))
