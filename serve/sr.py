"""The super-resolution pipeline: any decoded image in, upscaled image plus run info out.

`upscale` takes what the app and CLI have (a common.images.DecodedImage, or an HxW / HxWx1 / HxWx3 /
HxWx4 array, float in [0,1] or uint8/uint16) and handles what the model does not: grey images run as
RGB, alpha is resized beside the model (bicubic), 16-bit precision is kept on the float path, and
pixel limits stop a request before it allocates gigabytes.

CLI: python -m serve.sr IN.png|FOLDER --model flashsr_x4 --out OUT.png|OUT_FOLDER
     [--backend auto|torch|onnx|openvino|trt]
     [--tile 256] [--format png|jpeg|webp|webp-lossless|tiff --quality Q] [--outscale X | --width W | --height H |
     --long-side L] [--overwrite] [--precision fp32|bf16|int8|auto]
     [--strength S]   (real-photo models flashsr_real_x2/x4: denoise strength, 0 keeps texture, 1 cleans hard)
     (folders: recursive, mirrored tree, skip-done, summary; exit 1 if any failed)
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

import numpy as np
from PIL import Image

from common.image_write import format_for_path, normalize_format, write_image
from common.images import DecodedImage, format_megapixels, read_image, to_uint8
from models import get_spec
from models.registry import DEFAULT_STRENGTH

from .contract import InputError, check_control, cli_main
from .resize_plan import MAX_INPUT_PIXELS, MAX_OUTPUT_PIXELS, plan_resize, resize_float
from .runtime import get_backend
from .tiling import bounded_tile, call_pixel_budget, check_tile, plan_for, tiled_apply


@dataclass
class UpscaleResult:
    image: np.ndarray  # float32 HxWxC in [0,1]: C=3 (RGB), 4 (RGBA), or 1 (grey with grey="single")
    info: Dict[str, Any] = field(default_factory=dict)
    bit_depth: int = 8  # of the source; `save` writes 16-bit PNG/TIFF when this is 16

    def to_uint8(self) -> np.ndarray:
        return to_uint8(self.image)

    def to_uint16(self) -> np.ndarray:
        return np.clip(np.rint(self.image * 65535.0), 0, 65535).astype(np.uint16)


def _split_array(arr: np.ndarray) -> DecodedImage:
    """An array in any of the accepted layouts/dtypes -> DecodedImage (float RGB + optional alpha)."""
    arr = np.asarray(arr)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise InputError(f"image must be HxW, HxWx1, HxWx3 or HxWx4, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"image is empty (shape {arr.shape})")
    bit_depth = 16 if arr.dtype == np.uint16 else 8
    if arr.dtype.kind in "ui":
        arr = arr.astype(np.float32) / (65535.0 if arr.dtype == np.uint16 else 255.0)
    elif arr.dtype.kind != "f":
        raise InputError(f"image dtype {arr.dtype} is not supported (use float in [0,1], uint8 or uint16)")
    arr = np.clip(np.nan_to_num(arr.astype(np.float32, copy=False)), 0.0, 1.0)
    if arr.ndim == 2:
        arr = arr[..., None]
    grey = arr.shape[2] == 1
    alpha = arr[..., 3] if arr.shape[2] == 4 else None
    rgb = np.repeat(arr, 3, axis=2) if grey else arr[..., :3]
    return DecodedImage(np.ascontiguousarray(rgb), alpha, grey, bit_depth)


def resize_alpha(alpha: np.ndarray, size_hw: tuple) -> np.ndarray:
    """Bicubic resize of an HxW float mask in PIL's 32-bit float mode (no 8-bit rounding of 16-bit alpha)."""
    pil = Image.fromarray(np.ascontiguousarray(alpha, dtype=np.float32), mode="F")
    out = np.asarray(pil.resize((int(size_hw[1]), int(size_hw[0])), Image.BICUBIC), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


def check_size(width: int, height: int, scale: int, max_input_pixels: int, max_output_pixels: int) -> None:
    if width * height > max_input_pixels:
        have, limit = format_megapixels(width * height, max_input_pixels)
        raise InputError(f"input {width}x{height} is {have}, over the limit of {limit}; downscale or crop it first")
    out_pixels = width * height * scale * scale
    if out_pixels > max_output_pixels:
        have, limit = format_megapixels(out_pixels, max_output_pixels)
        raise InputError(f"x{scale} of {width}x{height} would be {width * scale}x{height * scale} = "
                         f"{have}, over the output limit of {limit}; use a smaller input or a smaller scale")


def check_strength(strength: Any) -> float:
    """A denoise strength as a float in [0, 1]; InputError with a sentence for anything else."""
    return check_control(strength, "strength", 0.0, 1.0, ("keep texture", "clean hard"))


def upscale(image: Union[DecodedImage, np.ndarray], model_name: str = "flashsr_x4", backend: str = "auto", *,
            tile: int = 256, overlap: Optional[int] = None, batch_size: int = 4, grey: str = "rgb",
            precision: str = "fp32", strength: Optional[float] = None,
            max_input_pixels: int = MAX_INPUT_PIXELS, max_output_pixels: int = MAX_OUTPUT_PIXELS,
            progress: Optional[Callable[[int, int], None]] = None, **backend_options) -> UpscaleResult:
    """Super-resolve one image; returns UpscaleResult(image float HxWxC in [0,1], info).

    grey: for grey sources, "rgb" returns HxWx3 with R=G=B (the channel mean of the model output,
    so no colour cast appears), "single" returns HxWx1. Alpha comes back as a 4th channel, bicubic-
    resized. `overlap=None` picks the exact overlap for the model (serve.tiling: 50 px for FlashSR,
    so keep tiles >= ~200 px or the overlap dominates the work); `tile=0` runs the whole image at once, up to
    serve.tiling.MAX_TILE px per side (larger images are tiled at that size: same result, bounded memory).
    `precision`: 'fp32' (exact), 'bf16', 'int8' or 'auto' (serve.precision; labels like 'fast bf16' work too).
    `backend_options` go to serve.runtime.get_backend (weights_path, threads...).
    strength: denoise strength in [0, 1] for models that take one (spec.strength_input: flashsr_real_*);
    None means DEFAULT_STRENGTH (0.5). Other models ignore it (info["strength"] is then None); a value
    outside [0, 1], NaN or a non-number raises InputError for every model.
    """
    if grey not in ("rgb", "single"):
        raise ValueError(f"grey must be 'rgb' or 'single', not '{grey}'")
    strength = DEFAULT_STRENGTH if strength is None else check_strength(strength)
    decoded = image if isinstance(image, DecodedImage) else _split_array(image)
    spec = get_spec(model_name)
    if spec.task != "sr":
        raise ValueError(f"'{model_name}' is a {spec.task} model, not super-resolution")
    height, width = decoded.rgb.shape[:2]
    if height == 0 or width == 0:
        raise InputError(f"image is empty ({width}x{height})")
    check_size(width, height, spec.scale, max_input_pixels, max_output_pixels)

    runner = get_backend(model_name, backend, precision=precision, **backend_options)
    name_in, name_out = runner.inputs[0].name, runner.outputs[0].name
    tile = bounded_tile(tile, height, width)
    tile = min(tile, spec.max_tile) if spec.max_tile else tile
    if overlap is None:
        check_tile(tile, runner.receptive_radius, model_name, height, width)
    plan = plan_for(runner.receptive_radius, tile=tile, overlap=overlap, batch_size=batch_size)
    lr = decoded.rgb.transpose(2, 0, 1)[None]
    started = time.perf_counter()
    def run_tiles(batch: np.ndarray) -> np.ndarray:
        feeds = {name_in: batch}
        if spec.strength_input:  # every tile of the batch gets the same strength
            feeds["strength"] = np.full((batch.shape[0], 1), strength, dtype=np.float32)
        return runner.run(feeds)[name_out]

    out, tiles = tiled_apply(run_tiles, lr, spec.scale, plan, spec.pad_multiple, progress,
                             max_call_pixels=call_pixel_budget(spec))
    seconds = time.perf_counter() - started
    rgb = np.clip(out[0], 0.0, 1.0, out=out[0]).transpose(1, 2, 0)  # in place: 16 MP of float RGB is 192 MB
    del out
    if decoded.was_grey:
        mean = rgb.mean(axis=2, keepdims=True)
        rgb = mean if grey == "single" else np.repeat(mean, 3, axis=2)
    channels = [rgb]
    if decoded.alpha is not None:
        channels.append(resize_alpha(decoded.alpha, rgb.shape[:2])[..., None])
    result = np.ascontiguousarray(np.concatenate(channels, axis=2) if len(channels) > 1 else rgb)
    info = {**runner.describe(), "selection": runner.selection_reason, "seconds": round(seconds, 4),
            "tiles": tiles, "tile": plan.tile, "overlap": plan.overlap, "scale": spec.scale,
            "input_size": [width, height], "output_size": [result.shape[1], result.shape[0]],
            "strength": strength if spec.strength_input else None}
    return UpscaleResult(result, info, decoded.bit_depth)


def save_image(result: UpscaleResult, path: Union[str, Path], bits: Union[int, str] = "auto", *,
               format: Optional[str] = None, quality: Optional[int] = None, exif: Optional[bytes] = None) -> Path:
    """Write PNG/JPEG/WebP/TIFF via common.image_write (sRGB-tagged, EXIF kept); the report goes to info["saved"].

    bits="auto" keeps a 16-bit source 16-bit in PNG/TIFF and reduces it (noted) for JPEG/WebP; an explicit
    bits=16 with JPEG/WebP is an error. format: png, jpeg, webp, webp-lossless, tiff (default: from the
    name). exif: the input's DecodedImage.exif.
    """
    path = Path(path)
    requested = result.bit_depth if bits == "auto" else int(bits)
    fmt = normalize_format(format) if format else format_for_path(path)
    if bits != "auto" and requested == 16 and fmt not in ("png", "tiff"):
        raise ValueError(f"{path.suffix or fmt} cannot hold 16-bit images; use .png or .tif")
    result.info["saved"] = write_image(result.image, path, fmt, quality=quality, bit_depth=requested, exif=exif)
    return path


def _as_decoded(image: np.ndarray, like: DecodedImage) -> DecodedImage:
    """A pass's output as the next pass's input, keeping the source's grey flag and bit depth."""
    channels = image.shape[2]
    colour = image[..., :3] if channels >= 3 else np.repeat(image[..., :1], 3, axis=2)
    alpha = image[..., -1] if channels in (2, 4) else None
    return DecodedImage(np.ascontiguousarray(colour), alpha, like.was_grey, like.bit_depth, like.name)


def upscale_to(image: Union[DecodedImage, np.ndarray], model_name: str = "flashsr_x4", backend: str = "auto", *,
               outscale: Any = None, width: Any = None, height: Any = None, long_side: Any = None,
               max_input_pixels: int = MAX_INPUT_PIXELS, max_output_pixels: int = MAX_OUTPUT_PIXELS,
               progress: Optional[Callable[[int, int], None]] = None, **upscale_options) -> UpscaleResult:
    """Upscale to any size (see the module doc); `upscale_options` go to serve.sr.upscale (tile, grey, ...)."""
    decoded = image if isinstance(image, DecodedImage) else _split_array(image)
    h, w = decoded.rgb.shape[:2]
    plan = plan_resize(w, h, model_name, outscale=outscale, out_width=width, out_height=height,
                       long_side=long_side, max_input_pixels=max_input_pixels, max_output_pixels=max_output_pixels)
    if upscale_options.get("weights_path") and set(plan.passes) != {model_name}:
        raise InputError(f"this size needs {plan.describe()}, but a custom weights file only replaces "
                         f"{model_name}; ask for x{get_spec(model_name).scale} or use the shipped weights")
    started = time.perf_counter()
    current, passes, result = decoded, [], None
    def overall(index: int) -> Optional[Callable[[int, int], None]]:
        if progress is None:
            return None
        return lambda done, total: progress(index * 1000 + (1000 * done) // max(total, 1), len(plan.passes) * 1000)

    for index, name in enumerate(plan.passes):
        step = overall(index)
        result = upscale(current, name, backend, max_input_pixels=max(max_input_pixels, max_output_pixels),
                         max_output_pixels=max_output_pixels, progress=step, **upscale_options)
        passes.append({k: result.info[k] for k in ("model", "input_size", "output_size", "seconds", "tiles")
                       if k in result.info})
        current = _as_decoded(result.image, decoded)
    image_out = result.image
    if plan.resize is not None:
        image_out = resize_float(image_out, plan.output_size, plan.resize)
    info: Dict[str, Any] = dict(result.info)
    info.update({"model": " then ".join(plan.passes), "passes": passes, "scale": round(plan.scale, 6),
                 "model_scale": plan.model_scale, "input_size": [w, h],
                 "output_size": [image_out.shape[1], image_out.shape[0]], "resize": plan.resize,
                 "tiles": sum(p.get("tiles", 0) for p in passes),
                 "seconds": round(time.perf_counter() - started, 4), "run": plan.describe()})
    return UpscaleResult(np.ascontiguousarray(image_out), info, decoded.bit_depth)


def _describe_run(out: Path, info: Dict[str, Any]) -> str:
    lines = [f"{out}: {info['output_size'][0]}x{info['output_size'][1]} from {info['input_size'][0]}x"
             f"{info['input_size'][1]} with {info.get('run') or info['model']} on {info['backend']} "
             f"({info['provider']}), {info['tiles']} tiles, {info['seconds']:.2f}s"]
    if info.get("selection"):
        lines.append(info["selection"])
    notes = list(info.get("input_notes", [])) + list(info.get("saved", {}).get("notes", []))
    return "\n".join(lines + [f"note: {n}" for n in notes])


@cli_main
def main(argv=None) -> int:
    from .batch import add_output_arguments, output_format, run_cli

    p = argparse.ArgumentParser(prog="python -m serve.sr", description="Upscale an image, or every image in a "
                                "folder (recursive; the output tree mirrors it), with a registered SR model.")
    p.add_argument("input", help="image file or folder")
    p.add_argument("--model", default="flashsr_x4")
    p.add_argument("--out", required=True, help="output file, or output folder for a folder input "
                   "(.png/.tif keep 16-bit sources 16-bit)")
    p.add_argument("--backend", default="auto",
                   help="auto, torch, onnx, openvino, trt or a kind from serve.runtime.KINDS")
    p.add_argument("--precision", default="fp32", help="fp32 (exact), bf16, int8 or auto (see serve.precision)")
    p.add_argument("--tile", type=int, default=256, help="tile side in input pixels (0: whole image)")
    p.add_argument("--overlap", type=int, default=None, help="tile overlap (default: exact for the model)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--bits", default="auto", choices=["auto", "8", "16"])
    p.add_argument("--grey", default="rgb", choices=["rgb", "single"], help="grey inputs: write RGB or 1 channel")
    p.add_argument("--weights", default=None, help="checkpoint to use instead of the shipped weights")
    p.add_argument("--strength", type=float, default=None,
                   help=f"denoise strength 0..1 for real-photo models (default {DEFAULT_STRENGTH}); others ignore it")
    add_output_arguments(p, sizes=True)
    args = p.parse_args(argv)
    options = {"weights_path": args.weights} if args.weights else {}
    folder = Path(args.input).is_dir()
    fmt = output_format(args, Path(args.out), folder)
    sizes = {"outscale": args.outscale, "width": args.width, "height": args.height, "long_side": args.long_side}
    sized = any(v is not None for v in sizes.values())
    if sized:
        from .resize_plan import target_size

        if args.outscale is not None:
            target_size(100, 100, outscale=args.outscale)  # a bad scale fails before any file is read

    def job(source: Path, out: Path) -> Dict[str, Any]:
        decoded = read_image(source)
        run = dict(tile=args.tile, overlap=args.overlap, batch_size=args.batch_size, grey=args.grey,
                   precision=args.precision, strength=args.strength, **options)
        result = (upscale_to(decoded, args.model, args.backend, **sizes, **run) if sized
                  else upscale(decoded, args.model, args.backend, **run))
        save_image(result, out, args.bits, format=fmt, quality=args.quality, exif=decoded.exif)
        result.info["input_notes"] = decoded.notes
        return result.info

    from common.image_write import EXTENSIONS

    return run_cli(args.input, args.out, job, _describe_run, extension=EXTENSIONS[fmt or "png"],
                   overwrite=args.overwrite, desc="upscaling")


if __name__ == "__main__":
    sys.exit(main())
