"""Per-pixel uncertainty for super-resolution: K stochastic passes -> mean, spread, heatmap, ranked patches.

Estimators:
    mc   Monte-Carlo dropout. K dropout masks are drawn once (models.mc_dropout.sample_masks, fixed seed) and fed
         to the model's MC variant as an input, so PyTorch, ONNX Runtime and TensorRT give the same
         numbers for the same masks; the passes run in chunks of `chunk` masks per call (bounded memory).
    tta  Test-time augmentation: the deterministic model on the 8 flips/rotations of the input, undone
         on the output; the spread between them is the second estimator (needs no dropout).
The whole image is processed in exact tiles (serve.tiling), every tile with the same K masks, so the
result equals one untiled run. The spread is the sample std (ddof=1) of BT.601 luminance
(0.299 R + 0.587 G + 0.114 B, RGB in [0,1]) over the K clipped predictions.

By default the input is centre-cropped to whole `patch` x `patch` squares (the seed's behaviour), so the
most / least certain patches tile the picture exactly.

CLI: python -m serve.uncertainty IMAGE|FOLDER --passes 40 --out DIR [--model flashsr_x2] [--estimator mc|tta]
     (a folder: one output folder per image, mirroring the tree; done ones skipped unless --overwrite)
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple, Union

import numpy as np

from common.images import DecodedImage, read_image
from models import CheckpointError, get_spec, load_model
from models.io import MASKS_INPUT
from models.mc_dropout import sample_masks

from .contract import InputError, cli_main
from .runtime import get_backend
from .sr import _split_array, check_size
from .tiling import bounded_tile, check_tile, pad_to_multiple, plan_for, tile_starts, tiled_apply
from .uncertainty_outputs import (
    UncertaintyResult,
    apply_colormap,
    rank_patches,
    render_colorbar,
    robust_max,
    write_outputs,
    zip_outputs,
)

ESTIMATORS = ("mc", "tta")
MIN_PASSES, MAX_PASSES = 2, 128
MAX_INPUT_PIXELS = 4_000_000  # K passes of a 2000x2000 image already take minutes on CPU
MAX_OUTPUT_PIXELS = 16_000_000  # the statistics (7 float32 channels) of 16 MP are ~450 MB
MC_CALL_BYTES = 384 * 2 ** 20  # chunk=0: what one call's passes may hold (see auto_chunk)
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# the 8 dihedral transforms as (quarter turns, mirror); identity first, same-shape ones adjacent
DIHEDRAL = ((0, False), (2, False), (0, True), (2, True), (1, False), (3, False), (1, True), (3, True))
Progress = Callable[[float, str], None]

__all__ = ["UncertaintyResult", "estimate_uncertainty", "write_outputs", "zip_outputs", "ESTIMATORS",
           "MIN_PASSES", "MAX_PASSES"]


def _check_arguments(passes, estimator: str, patch: int, top_n: int, chunk: int) -> None:
    if estimator not in ESTIMATORS:
        raise InputError(f"estimator must be one of {', '.join(ESTIMATORS)}, not '{estimator}'")
    if isinstance(passes, bool) or not isinstance(passes, (int, np.integer)) or not MIN_PASSES <= passes <= MAX_PASSES:
        raise InputError(f"passes must be a whole number from {MIN_PASSES} to {MAX_PASSES} (got {passes!r}): "
                         f"the spread needs at least {MIN_PASSES}, and the cap keeps the run time bounded")
    for name, value, low in (("patch", patch, 1), ("top_n", top_n, 0), ("chunk", chunk, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InputError(f"{name} must be a whole number >= {low} (got {value!r})")


def auto_chunk(size_hw: Tuple[int, int], tile: int, scale: int, passes: int, mask_channels: int = 64) -> int:
    """Passes per call for chunk=0: as many as keep one call's tensors within MC_CALL_BYTES. The MC graph
    runs the trunk before the dropout (~99% of one pass) once per call, so fewer calls are faster (K = 40
    in 5 calls of 8 cost 1.6x one call of 40), but each pass holds its masked features (mask_channels
    per LR pixel) and its upsampled output: 40 passes of one 256 px tile held ~1 GB."""
    side = bounded_tile(tile, *size_hw)
    lr_pixels = min(side, size_hw[0]) * min(side, size_hw[1])
    per_pass = 4 * lr_pixels * (mask_channels + 3 * 3 * scale * scale)  # features, conv out, shuffle, + skip
    return max(1, min(passes, MC_CALL_BYTES // per_pass))


def centre_crop(rgb: np.ndarray, patch: int) -> np.ndarray:
    """The centred crop to whole patch x patch squares (the seed's crop)."""
    h, w = rgb.shape[:2]
    ch, cw = h // patch * patch, w // patch * patch
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(rgb[top:top + ch, left:left + cw])


@lru_cache(maxsize=8)
def _dropout_params(model_name: str, weights: str, stamp: int, shipped: bool) -> Tuple[int, float]:
    """(mask width, dropout p) of the checkpoint; `stamp` (mtime) makes a replaced file load again.
    Without torch they come from the MC export's sidecar (the shipped weights/onnx/NAME_mc.onnx.json)."""
    try:
        model = load_model(model_name, Path(weights))  # an mc_dropout spec's model (callers check the spec)
    except ImportError as exc:
        from .runtime import export_record

        record = export_record(model_name, None if shipped else weights, mc=True)
        if "mc" not in record:
            raise CheckpointError(f"{model_name}: its MC export records no dropout parameters and torch is not "
                                  "installed to read them from the model (re-export with `python -m export onnx`)"
                                  ) from exc
        return int(record["mc"]["mask_channels"]), float(record["mc"]["dropout_p"])
    return int(model.mask_channels), float(model.dropout_p)


def dropout_params(model_name: str, weights_path=None) -> Tuple[int, float]:
    path = Path(weights_path) if weights_path else get_spec(model_name).weights_path
    if not path.exists():
        raise CheckpointError(f"model '{model_name}' has no weights at {path} (train it with train/ first)")
    return _dropout_params(model_name, str(path), path.stat().st_mtime_ns, weights_path is None)


class _Moments:
    """Running sums over passes for one tile: first pass, RGB mean and luminance std (shifted by the first
    pass's luminance, so E[d^2] - E[d]^2 does not cancel). float32 throughout: the sums of at most 128
    values in [0, 1] lose ~1e-6, and float64 made the statistics cost more than the passes (6.5 s of
    K = 40 at 512x512 output, against 0.25 s now)."""

    def __init__(self):
        self.count = 0
        self.first = self.first_y = self.rgb_sum = self.d_sum = self.d_sq = None

    def add(self, predictions: np.ndarray) -> None:
        preds = np.clip(predictions, 0.0, 1.0, out=predictions if predictions.flags.writeable else None)
        k, _, h, w = preds.shape
        y = (LUMA @ preds.reshape(k, 3, h * w)).reshape(k, h, w)  # BLAS over the channel axis
        if self.first is None:
            self.first, self.first_y = preds[0].copy(), y[0].copy()
            self.rgb_sum = np.zeros(preds.shape[1:], np.float32)
            self.d_sum, self.d_sq = np.zeros_like(self.first_y), np.zeros_like(self.first_y)
        d = y - self.first_y
        self.rgb_sum += preds.sum(axis=0)
        self.d_sum += d.sum(axis=0)
        self.d_sq += np.einsum("khw,khw->hw", d, d)
        self.count += len(preds)

    def channels(self) -> np.ndarray:
        """(7, h, w) float32: one pass (3), mean (3), std (1)."""
        k = self.count
        var = np.maximum(self.d_sq - self.d_sum ** 2 / k, 0.0) / max(k - 1, 1)
        return np.concatenate([self.first, self.rgb_sum / k, np.sqrt(var)[None]]).astype(np.float32, copy=False)


def _dihedral(x: np.ndarray, turns: int, mirror: bool) -> np.ndarray:
    x = x[..., ::-1] if mirror else x
    return np.rot90(x, turns, axes=(-2, -1))


def _undo_dihedral(y: np.ndarray, turns: int, mirror: bool) -> np.ndarray:
    y = np.rot90(y, -turns, axes=(-2, -1))
    return y[..., ::-1] if mirror else y


def _mc_passes(runner, masks: np.ndarray, chunk: int):
    """tile -> chunks of K predictions, one mask each (the same masks for every tile)."""
    name_in, name_out = runner.inputs[0].name, runner.outputs[0].name

    def passes(tile: np.ndarray) -> Iterator[np.ndarray]:
        for start in range(0, len(masks), chunk):
            yield runner.run({name_in: tile, MASKS_INPUT: masks[start:start + chunk]})[name_out]
    return passes


def _tta_groups(transforms) -> List[list]:
    """Transforms that keep the tile's shape, then those that transpose it (each group batches)."""
    return [group for group in ([t for t in transforms if t[0] % 2 == odd] for odd in (0, 1)) if group]


def _tta_passes(runner, transforms, chunk: int):
    """tile -> chunks of predictions on flipped/rotated copies, mapped back to the tile's frame."""
    name_in, name_out = runner.inputs[0].name, runner.outputs[0].name

    def passes(tile: np.ndarray) -> Iterator[np.ndarray]:
        for group in _tta_groups(transforms):
            for start in range(0, len(group), chunk):
                part = group[start:start + chunk]
                batch = np.concatenate([_dihedral(tile, *t) for t in part])
                out = runner.run({name_in: np.ascontiguousarray(batch)})[name_out]
                yield np.stack([_undo_dihedral(o, *t) for o, t in zip(out, part)])
    return passes


def _tile_count(h: int, w: int, plan, pad_multiple: int) -> int:
    """How many tiles tiled_apply will run (for progress fractions)."""
    hp, wp = pad_to_multiple(np.zeros((1, 1, h, w), np.float32), pad_multiple)[0].shape[-2:]
    tile = max(pad_multiple, plan.tile // pad_multiple * pad_multiple)
    return len(tile_starts(hp, min(tile, hp), plan.overlap)) * len(tile_starts(wp, min(tile, wp), plan.overlap))


def max_batch(runner, input_name: str) -> Optional[int]:
    """The most samples one call may carry: a TensorRT engine's profile max, else no limit (None)."""
    profile = getattr(getattr(runner, "engine", None), "profile", None)
    if not callable(profile):
        return None
    try:
        return int(profile(input_name)[2][0])
    except Exception:  # an engine without that input or profile: let the call itself report it
        return None


def _estimator(model_name: str, spec, estimator: str, passes: int, backend: str, seed: int, chunk: int, options):
    """(backend, tile -> chunks of predictions, passes actually run, calls per tile, extra summary fields)."""
    if estimator == "tta":
        runner = get_backend(model_name, backend, **options)
        chunk = min(chunk, max_batch(runner, runner.inputs[0].name) or chunk)
        transforms = DIHEDRAL[:min(passes, len(DIHEDRAL))]
        calls = sum(math.ceil(len(group) / chunk) for group in _tta_groups(transforms))
        return runner, _tta_passes(runner, transforms, chunk), len(transforms), calls, {"chunk": chunk}
    if not spec.mc_dropout:
        raise InputError(f"'{model_name}' has no Monte-Carlo dropout (spec.mc_dropout is False); use estimator='tta'")
    channels, p = dropout_params(model_name, options.get("weights_path"))
    if p <= 0.0:
        raise InputError(f"'{model_name}' was built with dropout p=0: MC passes would all be equal; "
                         "use estimator='tta'")
    runner = get_backend(model_name, backend, mc=True, **options)
    chunk = min(chunk, max_batch(runner, MASKS_INPUT) or chunk)
    masks = sample_masks(passes, channels, p, seed)
    return runner, _mc_passes(runner, masks, chunk), passes, math.ceil(passes / chunk), {"dropout_p": p,
                                                                                       "chunk": chunk}


def estimate_uncertainty(image: Union[DecodedImage, np.ndarray], model_name: str = "flashsr_x2", passes: int = 40,
                         backend: str = "auto", estimator: str = "mc", patch: int = 64, top_n: int = 4,
                         seed: int = 0, chunk: int = 0, crop_to_patches: bool = True,
                         progress: Optional[Progress] = None, *, tile: int = 256, colormap: str = "inferno",
                         precision: str = "fp32",
                         max_input_pixels: int = MAX_INPUT_PIXELS, max_output_pixels: int = MAX_OUTPUT_PIXELS,
                         **backend_options) -> UncertaintyResult:
    """K stochastic passes over one image -> UncertaintyResult (see the module docstring).

    `image`: a DecodedImage or an HxWx3 (HxW, HxWx4, uint8/uint16) array, float in [0,1]; alpha is
    ignored. `progress(fraction, description)` is called after every chunk of passes (`chunk` passes
    per call; 0 picks auto_chunk). Raises InputError for passes outside 2..128, an image smaller than
    one patch, or too many pixels.
    `precision`: 'fp32' (exact), 'bf16', 'int8' or 'auto' (serve.precision). `backend_options` go to
    serve.runtime.get_backend (weights_path, threads, ...).
    """
    backend_options = {**backend_options, "precision": precision}
    _check_arguments(passes, estimator, patch, top_n, chunk)
    decoded = image if isinstance(image, DecodedImage) else _split_array(image)
    spec = get_spec(model_name)
    if spec.task != "sr":
        raise InputError(f"'{model_name}' is a {spec.task} model, not super-resolution")
    h, w = decoded.rgb.shape[:2]
    if h < patch or w < patch:
        raise InputError(f"image is {w}x{h}, smaller than one {patch}x{patch} patch; the uncertainty map "
                         f"needs an image of at least {patch}x{patch} pixels")
    check_size(w, h, spec.scale, max_input_pixels, max_output_pixels)
    lr = centre_crop(decoded.rgb, patch) if crop_to_patches else np.ascontiguousarray(decoded.rgb)
    if not chunk:
        mc = estimator == "mc" and spec.mc_dropout  # tta passes are whole forwards: ~64 channels per pixel
        channels = dropout_params(model_name, backend_options.get("weights_path"))[0] if mc else 64
        chunk = auto_chunk(lr.shape[:2], tile, spec.scale, passes, channels)
    started = time.perf_counter()
    runner, per_tile, count, calls, extra = _estimator(model_name, spec, estimator, passes, backend, seed, chunk,
                                                       backend_options)
    side = bounded_tile(tile, *lr.shape[:2])
    check_tile(side, runner.receptive_radius, model_name, *lr.shape[:2])
    plan = plan_for(runner.receptive_radius, tile=side, batch_size=1)
    steps = _tile_count(*lr.shape[:2], plan, spec.pad_multiple) * calls
    done = [0]

    def run_tile(batch: np.ndarray) -> np.ndarray:
        moments = _Moments()
        for predictions in per_tile(batch):
            moments.add(predictions)
            done[0] += 1
            if progress is not None:
                progress(min(done[0] / steps, 1.0), f"{estimator} passes: step {done[0]} of {steps}")
        return moments.channels()[None]

    stats, tiles = tiled_apply(run_tile, lr.transpose(2, 0, 1)[None], spec.scale, plan, spec.pad_multiple)
    one, mean = (np.ascontiguousarray(stats[0, i:i + 3].transpose(1, 2, 0)) for i in (0, 3))
    std_map = np.ascontiguousarray(np.maximum(stats[0, 6], 0.0))
    vmax = robust_max(std_map)
    heatmap = apply_colormap(std_map, vmax, colormap)
    most, least, most_records, least_records = rank_patches(lr, mean, heatmap, std_map, patch, spec.scale, top_n)
    seconds = time.perf_counter() - started
    summary = {
        "model": model_name, "estimator": estimator, "passes": count, "seed": seed,
        "mean_std": round(float(std_map.mean()), 7), "max_std": round(float(std_map.max()), 7),
        "heatmap_max_std": round(vmax, 7), "colormap": colormap, "std_of": "BT.601 luminance, RGB in [0,1], ddof=1",
        "seconds": round(seconds, 3), "backend": f"{runner.kind} ({runner.provider})", "precision": runner.precision,
        "backend_selection": runner.selection_reason, **extra,
        "scale": spec.scale, "input_size": [w, h], "cropped_size": [lr.shape[1], lr.shape[0]],
        "output_size": [mean.shape[1], mean.shape[0]], "crop_to_patches": crop_to_patches, "tiles": tiles,
        "patch": patch, "most_certain": most_records, "least_certain": least_records,
    }
    return UncertaintyResult(lr, one, mean, std_map, heatmap, render_colorbar(vmax, colormap), most, least, summary)


@cli_main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m serve.uncertainty", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", help="image file (the low-resolution input), or a folder of them (recursive)")
    p.add_argument("--out", required=True, help="output folder (the seed's layout plus summary.json); for a "
                   "folder input, one such folder per image, mirroring the input tree")
    p.add_argument("--model", default="flashsr_x2")
    p.add_argument("--passes", type=int, default=40, help=f"stochastic passes K ({MIN_PASSES}..{MAX_PASSES})")
    p.add_argument("--estimator", default="mc", choices=ESTIMATORS)
    p.add_argument("--backend", default="auto",
                   help="auto, torch, onnx, openvino, trt or a kind from serve.runtime.KINDS")
    p.add_argument("--precision", default="fp32", help="fp32 (exact), bf16, int8 or auto (see serve.precision)")
    p.add_argument("--patch", type=int, default=64, help="patch side in LR pixels (crop and ranking)")
    p.add_argument("--top-n", type=int, default=4, help="how many most / least certain patches to save")
    p.add_argument("--seed", type=int, default=0, help="seed of the dropout masks")
    p.add_argument("--chunk", type=int, default=0, help="passes per call (bounds memory; 0: as many as fit in "
                   f"{MC_CALL_BYTES >> 20} MB, see auto_chunk)")
    p.add_argument("--tile", type=int, default=256, help="tile side in LR pixels (0: whole image)")
    p.add_argument("--no-crop", action="store_true", help="keep the whole image (no centre crop to patches)")
    p.add_argument("--weights", default=None, help="checkpoint to use instead of the shipped weights")
    p.add_argument("--zip", default=None, help="also write the outputs into this zip file (single image only)")
    p.add_argument("--overwrite", action="store_true", help="folder input: redo images whose output folder exists")
    args = p.parse_args(argv)
    options = {"weights_path": args.weights} if args.weights else {}
    if args.zip and Path(args.image).is_dir():
        raise ValueError("--zip takes a single image, not a folder")

    def job(source, out):
        result = estimate_uncertainty(read_image(source), args.model, args.passes, args.backend, args.estimator,
                                      args.patch, args.top_n, args.seed, args.chunk, not args.no_crop,
                                      tile=args.tile, precision=args.precision, **options)
        files = write_outputs(result, out)
        if args.zip:
            zip_outputs(result, args.zip)
        return {**result.summary, "files": len(files)}

    def describe(out, s):
        return (f"{out}: {s['files']} files; {s['estimator']} x{s['passes']} on {s['backend']}, "
                f"{s['output_size'][0]}x{s['output_size'][1]}, mean std {s['mean_std']:.4g}, max {s['max_std']:.4g}, "
                f"{s['seconds']:.2f}s")

    from .batch import run_cli

    return run_cli(args.image, args.out, job, describe, overwrite=args.overwrite, desc="uncertainty",
                   directories=True)


if __name__ == "__main__":
    sys.exit(main())
