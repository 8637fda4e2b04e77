"""The colorization pipeline: a grey (or colour) photo in, a colour photo out.

    from serve.colorize import colorize
    result = colorize(decoded_image, "colorize_hint_cls", backend="auto")  # -> ColorizeResult(image, info)
    result = colorize(decoded_image, "colorize_hint_cls", hints=[(120, 40, "#3070d0")])  # a blue sky hint

What the model does not handle is done here. A colour input is turned grey first (its lightness;
info["converted_from_colour"] says so). The model sees the lightness L/100 (CIE Lab, D65) at most
`chroma_max_side` pixels on the long side: chroma is low-frequency, so its a/b are taken from the
model's output, upsampled bilinearly to full size and recombined with the exact full-resolution L,
so the result has the input's exact structure at any size and runtime cost stays bounded. Alpha
is passed through untouched, 16-bit input keeps full precision (and `save_image` writes 16-bit),
and images under MIN_SIDE px a side or over the pixel limit get a clear InputError.

Vividness (models with spec.vividness_input: colorize_lab and colorize_hint_*): a per-image multiplier of the
network's own colour on top of its calibrated chroma gain, 0 to models.io.MAX_VIVIDNESS; 1 (the default)
is the colour calibrated on held-out photos for accuracy, higher is more vivid and less often right,
0 leaves only the hints' colour (grey without hints). Hints stay exact at any vividness. It runs inside the
graph, so every backend takes it.

Hints (models with spec.hint_inputs): a list of (x, y, colour) in the input's pixels, checked by
serve/colorize_hints.py (clear InputError for positions outside the image, colours outside 0..255,
more than MAX_HINTS), painted as small patches at the model's resolution (models/hints.py). No hints
is automatic colorization; a model without hint inputs given hints is an InputError.

CLI: python -m serve.colorize IN.png|FOLDER --out OUT.png|OUT_FOLDER [--model colorize_lab]
     [--backend auto|torch|onnx|openvino|trt] [--hint X,Y,#rrggbb ...] [--vividness V]
     [--format png|jpeg|webp|webp-lossless|tiff --quality Q] [--overwrite]   (folders: as serve.sr)
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable, Optional, Sequence, Union

import cv2
import numpy as np

from common.images import DecodedImage, format_megapixels, read_image
from common.lab import lab_to_rgb
from models import get_spec
from models.hints import encode_hints, resize_hint_maps
from models.io import DEFAULT_VIVIDNESS, HINT_AB, HINT_MASK, MAX_VIVIDNESS, VIVIDNESS

from .colorize_hints import check_hint_maps, check_hints
from .contract import InputError, check_control, cli_main
from .runtime import get_backend
from .sr import UpscaleResult, _split_array, save_image
from .tiling import pad_to_multiple

DEFAULT_MODEL = "colorize_hint_cls"
MIN_SIDE = 8  # a smaller image carries no context to choose colours from
MAX_INPUT_PIXELS = 40_000_000
CHROMA_MAX_SIDE = 512
COLOUR_TOLERANCE = 2.0 / 255  # channel spread below this counts as grey (8-bit rounding of a grey photo)

ColorizeResult = UpscaleResult  # image HxWx3 (or HxWx4 with alpha) float in [0,1], info dict, bit_depth


def lightness(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 sRGB in [0,1] -> HxW float32 L/100 (CIE Lab L, D65; same as skimage rgb2lab[..., 0] / 100)."""
    c = np.clip(np.asarray(rgb, dtype=np.float32), 0.0, 1.0)
    linear = np.where(c > 0.04045, ((np.maximum(c, 0.04045) + 0.055) / 1.055) ** 2.4, c / 12.92)
    y = linear[..., 0] * 0.212671 + linear[..., 1] * 0.715160 + linear[..., 2] * 0.072169
    f = np.where(y > 0.008856, np.cbrt(np.maximum(y, 0.008856)), 7.787 * y + 16.0 / 116.0)
    return np.clip((116.0 * f - 16.0) / 100.0, 0.0, 1.0).astype(np.float32)


def is_colour(rgb: np.ndarray) -> bool:
    """True when the RGB channels differ anywhere by more than 8-bit rounding."""
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    return bool(spread.max(initial=0.0) > COLOUR_TOLERANCE)


def _resize(arr: np.ndarray, size_hw: tuple, shrink: bool) -> np.ndarray:
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(arr, dtype=np.float32), (int(size_hw[1]), int(size_hw[0])),
                     interpolation=interpolation)
    return out.reshape(int(size_hw[0]), int(size_hw[1]), -1) if arr.ndim == 3 else out


def check_vividness(vividness: Any) -> float:
    """A vividness as a float in [0, MAX_VIVIDNESS] (None: the default 1); InputError for anything else."""
    if vividness is None:
        return DEFAULT_VIVIDNESS
    return check_control(vividness, "vividness", 0.0, MAX_VIVIDNESS, ("no colour of the model's own", "most vivid"))


def _rgb_to_ab(rgb: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    return rgb2lab(np.clip(rgb, 0.0, 1.0))[..., 1:].astype(np.float32)


def _lab_to_rgb(grey: np.ndarray, ab: np.ndarray, rows: int = 1024) -> np.ndarray:
    """Exact L + ab -> RGB with the models' own formulas (common.lab, numpy: serving needs no torch),
    a band of rows at a time (bounded memory)."""
    out = np.empty(grey.shape + (3,), dtype=np.float32)
    for top in range(0, grey.shape[0], rows):
        lab = np.concatenate([grey[top: top + rows, :, None] * 100.0, ab[top: top + rows]], axis=2)
        out[top: top + rows] = lab_to_rgb(lab)
    return out


def chroma(runner, grey: np.ndarray, hints: Sequence = (), chroma_max_side: int = CHROMA_MAX_SIDE,
           hint_maps: Optional[tuple] = None, vividness: float = DEFAULT_VIVIDNESS):
    """The model's a, b (HxWx2, Lab units) for lightness `grey` (HxW, L/100) with checked hints (and
    checked dense hint maps, under the point hints) at a checked vividness, and the (h, w) the model ran
    at (long side at most chroma_max_side; the ab is upsampled to full size)."""
    spec = runner.spec
    height, width = grey.shape
    factor = min(1.0, chroma_max_side / max(height, width))
    small_hw = (max(1, round(height * factor)), max(1, round(width * factor)))
    small = grey if factor == 1.0 else _resize(grey, small_hw, shrink=True)
    padded, (h, w) = pad_to_multiple(small[None, None], spec.pad_multiple)
    feeds = {runner.inputs[0].name: padded}
    if spec.hint_inputs:
        hint_ab, hint_mask = encode_hints(hints, h, w, source_hw=(height, width))
        if hint_maps is not None:
            dense_ab, dense_mask = resize_hint_maps(*hint_maps, h, w)
            hint_ab = np.where(hint_mask > 0, hint_ab, dense_ab)
            hint_mask = np.maximum(hint_mask, dense_mask)
        pad = ((0, 0), (0, 0), (0, padded.shape[2] - h), (0, padded.shape[3] - w))
        feeds.update({HINT_AB: np.pad(hint_ab, pad), HINT_MASK: np.pad(hint_mask, pad)})
    if spec.vividness_input:
        feeds[VIVIDNESS] = np.full((1, 1), vividness, np.float32)
    out = runner.run(feeds)[runner.outputs[0].name]
    ab = _rgb_to_ab(out[0, :, :h, :w].transpose(1, 2, 0))
    return (ab if factor == 1.0 else _resize(ab, (height, width), shrink=False)), small_hw


def colorize(image: Union[DecodedImage, np.ndarray], model_name: str = DEFAULT_MODEL, backend: str = "auto", *,
             chroma_max_side: int = CHROMA_MAX_SIDE, max_input_pixels: int = MAX_INPUT_PIXELS,
             progress: Optional[Callable[[int, int], None]] = None, precision: str = "fp32",
             hints: Optional[Sequence] = None, hint_maps: Optional[tuple] = None,
             vividness: Optional[float] = None, **backend_options) -> ColorizeResult:
    """Colorize one image; returns ColorizeResult(image float HxWx3 [+alpha] in [0,1], info, bit_depth).

    `image`: a DecodedImage, or an HxW / HxWx1 / HxWx3 / HxWx4 array (float in [0,1], uint8 or uint16).
    info["converted_from_colour"] is True when a colour image was turned grey first. `precision`: 'fp32'
    (exact), 'bf16' (OpenVINO) or 'auto' (serve.precision; no int8 for colorization). `hints`: list of
    (x, y, colour) for hint models (serve/colorize_hints.py); `hint_maps`: (hint_ab HxWx2, hint_mask HxW)
    dense hints at the image's size (check_hint_maps; Triton's inputs). `vividness`: the colour strength
    (module docstring; None = 1; checked for every model, ignored by those without the input, as SR's
    strength: info["vividness"] is then None). `backend_options` go to
    serve.runtime.get_backend (weights_path, threads, ...).
    """
    decoded = image if isinstance(image, DecodedImage) else _split_array(image)
    spec = get_spec(model_name)
    if spec.task != "colorize":
        raise ValueError(f"'{model_name}' is a {spec.task} model, not colorization")
    if chroma_max_side < spec.pad_multiple:
        raise ValueError(f"chroma_max_side must be at least {spec.pad_multiple}")
    height, width = decoded.rgb.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise InputError(f"image {width}x{height} is too small to colorize (needs at least {MIN_SIDE} px a side)")
    if height * width > max_input_pixels:
        have, limit = format_megapixels(height * width, max_input_pixels)
        raise InputError(f"image {width}x{height} is {have}, over the colorization limit of {limit}; "
                         "downscale or crop it first")
    converted = not decoded.was_grey and is_colour(decoded.rgb)
    hints = check_hints(hints, width, height)
    vividness = check_vividness(vividness)  # checked for every model; those without the input ignore it
    hint_maps = None if hint_maps is None else check_hint_maps(*hint_maps, width, height)
    if (hints or hint_maps is not None) and not spec.hint_inputs:
        raise InputError(f"'{model_name}' takes no colour hints; use a hint model such as colorize_hint_cls")
    grey = lightness(decoded.rgb)

    runner = get_backend(model_name, backend, precision=precision, **backend_options)
    if progress:
        progress(0, 1)
    started = time.perf_counter()
    ab, small_hw = chroma(runner, grey, hints, chroma_max_side, hint_maps, vividness)
    seconds = time.perf_counter() - started
    factor = small_hw[0] / height
    rgb = _lab_to_rgb(grey, ab)
    if progress:
        progress(1, 1)
    channels = [rgb] + ([decoded.alpha[..., None].astype(np.float32)] if decoded.alpha is not None else [])
    result = np.ascontiguousarray(np.concatenate(channels, axis=2) if len(channels) > 1 else rgb)
    info = {**runner.describe(), "selection": runner.selection_reason, "seconds": round(seconds, 4),
            "converted_from_colour": converted, "input_size": [width, height],
            "output_size": [result.shape[1], result.shape[0]], "chroma_size": [small_hw[1], small_hw[0]],
            "luminance": "exact input lightness (CIE L); model chroma upsampled" if factor != 1.0
            else "exact input lightness (CIE L)", "alpha_preserved": decoded.alpha is not None,
            "bit_depth": decoded.bit_depth, "hints": len(hints),
            "vividness": vividness if spec.vividness_input else None}
    if hint_maps is not None:
        info["hint_pixels"] = int((hint_maps[1] > 0).sum())
    if converted:
        info["note"] = "the input was a colour image: it was turned grey (its lightness) before colorizing" + (
            "; your hints set the colours" if hints or hint_maps is not None else "")
    return ColorizeResult(result, info, decoded.bit_depth)


def _describe_run(out, info) -> str:
    lines = [f"{out}: {info['output_size'][0]}x{info['output_size'][1]} with {info['model']} on {info['backend']} "
             f"({info['provider']}), chroma at {info['chroma_size'][0]}x{info['chroma_size'][1]}, "
             f"{info['seconds']:.2f}s"]
    notes = ([info["note"]] if info.get("converted_from_colour") else []) + list(info.get("input_notes", [])) \
        + list(info.get("saved", {}).get("notes", []))
    return "\n".join(lines + [f"note: {n}" for n in notes])


def parse_cli_hint(text: str) -> tuple:
    """'X,Y,#rrggbb' -> (x, y, colour); the colour itself is checked by check_hints."""
    parts = text.split(",", 2)
    try:
        return float(parts[0]), float(parts[1]), parts[2]
    except (IndexError, ValueError):
        raise InputError(f"--hint {text!r} must be X,Y,#rrggbb (e.g. 120,40,#3070d0)") from None


@cli_main
def main(argv=None) -> int:
    from pathlib import Path

    from common.image_write import EXTENSIONS

    from .batch import add_output_arguments, output_format, run_cli

    p = argparse.ArgumentParser(prog="python -m serve.colorize", description="Colorize a grey (or colour) image, "
                                "or every image in a folder (recursive; the output tree mirrors it).")
    p.add_argument("input", help="image file or folder (grey or colour; colour is turned grey first)")
    p.add_argument("--out", required=True, help="output file, or output folder for a folder input "
                   "(.png/.tif keep 16-bit sources 16-bit)")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--backend", default="auto",
                   help="auto, torch, onnx, openvino, trt or a kind from serve.runtime.KINDS")
    p.add_argument("--precision", default="fp32", help="fp32 (exact), bf16 or auto (see serve.precision)")
    p.add_argument("--chroma-size", type=int, default=CHROMA_MAX_SIDE, help="long side the model runs at")
    p.add_argument("--bits", default="auto", choices=["auto", "8", "16"])
    p.add_argument("--weights", default=None, help="checkpoint to use instead of the shipped weights")
    p.add_argument("--hint", action="append", default=[], metavar="X,Y,COLOUR",
                   help="a colour hint (hint models): pixel x,y and #rrggbb, e.g. 120,40,#3070d0; repeatable")
    p.add_argument("--vividness", type=float, default=DEFAULT_VIVIDNESS,
                   help=f"colour strength, 0 to {MAX_VIVIDNESS:g}: 1 = the calibrated (most accurate) colour, "
                        "higher = more vivid; hints stay exact")
    add_output_arguments(p)
    args = p.parse_args(argv)
    options = {"weights_path": args.weights} if args.weights else {}
    fmt = output_format(args, Path(args.out), Path(args.input).is_dir())
    hints = [parse_cli_hint(h) for h in args.hint]

    def job(source, out):
        decoded = read_image(source)
        result = colorize(decoded, args.model, args.backend, chroma_max_side=args.chroma_size,
                          precision=args.precision, hints=hints, vividness=args.vividness, **options)
        save_image(result, out, args.bits, format=fmt, quality=args.quality, exif=decoded.exif)
        result.info["input_notes"] = decoded.notes
        return result.info

    return run_cli(args.input, args.out, job, _describe_run, extension=EXTENSIONS[fmt or "png"],
                   overwrite=args.overwrite, desc="colorizing")


if __name__ == "__main__":
    sys.exit(main())
