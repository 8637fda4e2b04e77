"""Any output size: a scale the models do not have (x1.5, x3, x6, x8) or a target width / height / long side.

    from serve.resize_plan import upscale_to
    result = upscale_to(decoded, "flashsr_x4", outscale=3)        # x4 model, then area-downsized to x3
    result = upscale_to(decoded, "flashsr_x2", long_side=3000)    # whatever chain reaches 3000 px, then resized
    result.info["run"]  # 'flashsr_x4 (x4), then area resize 1600x1200 -> 1200x900 (x3)'

How: the model's family (flashsr -> flashsr_x2, flashsr_x4) is chained, smallest scales first (cheaper:
the big model then runs on the smaller image), using the fewest passes whose product reaches the
target; the result is then resized to the exact size: OpenCV INTER_AREA when shrinking (the
model overshot; this is the sharp, alias-free direction), Lanczos when a remainder must be enlarged.
Overshooting by more than 2x costs more than it gains, so then one pass fewer is run and the rest
enlarged with Lanczos (said in the info). Every size is checked against the pixel limits before
anything runs.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from itertools import combinations_with_replacement
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import cv2
import numpy as np

from common.images import DecodedImage, format_megapixels
from models import REGISTRY, get_spec

from .contract import InputError
from .sr import MAX_INPUT_PIXELS, MAX_OUTPUT_PIXELS, UpscaleResult, _split_array, upscale

MAX_OUTSCALE = 16.0
MAX_PASSES = 4
OVERSHOOT_LIMIT = 2.0  # chain product / wanted scale above this: one pass fewer + Lanczos enlargement


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise InputError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{what} must be a finite number, got {value!r}")
    return number


def target_size(width: int, height: int, *, outscale: Any = None, out_width: Any = None, out_height: Any = None,
                long_side: Any = None) -> Tuple[int, int, float]:
    """(output width, output height, scale) for exactly one of the four requests; InputError otherwise."""
    given = {k: v for k, v in (("outscale", outscale), ("width", out_width), ("height", out_height),
                               ("long_side", long_side)) if v is not None and v != ""}
    if len(given) != 1:
        raise InputError("give exactly one of outscale, width, height or long_side"
                         + (f" (got {', '.join(given)})" if given else ""))
    (what, value), = given.items()
    number = _number(value, what)
    if what == "outscale":
        if number <= 0:
            raise InputError(f"outscale must be greater than 0, got {number:g}")
        scale = number
    else:
        if number <= 0 or not number.is_integer():
            raise InputError(f"{what} must be a whole number of pixels above 0, got {value!r}")
        side = {"width": width, "height": height, "long_side": max(width, height)}[what]
        scale = number / side
    if scale > MAX_OUTSCALE:
        asked = f"x{scale:g}" if what == "outscale" else f"{int(number)} px is x{scale:.2f} of {side} px"
        raise InputError(f"{what}: {asked}; the most is x{MAX_OUTSCALE:g}")
    if what == "width":
        out_w, out_h = int(number), round(height * scale)
    elif what == "height":
        out_w, out_h = round(width * scale), int(number)
    else:
        out_w, out_h = round(width * scale), round(height * scale)
        if what == "long_side":
            out_w, out_h = (int(number), out_h) if width >= height else (out_w, int(number))
    return max(1, out_w), max(1, out_h), scale


def family_models(model_name: str) -> Dict[int, str]:
    """{scale: model name} of the SR models sharing `model_name`'s family ('flashsr_x4' -> {2: .., 4: ..})."""
    spec = get_spec(model_name)
    if spec.task != "sr":
        raise ValueError(f"'{model_name}' is a {spec.task} model, not super-resolution")
    family = model_name.rsplit("_x", 1)[0]
    found = {s.scale: s.name for s in REGISTRY.values() if s.task == "sr" and s.name.rsplit("_x", 1)[0] == family}
    return found or {spec.scale: spec.name}


@dataclass
class ResizePlan:
    passes: List[str]  # model names, run in order
    model_scale: int  # product of their scales
    input_size: Tuple[int, int]
    output_size: Tuple[int, int]
    scale: float  # the requested scale (output / input)
    resize: Optional[str]  # None (models hit the size exactly), "area" (shrink) or "lanczos" (enlarge)

    def describe(self) -> str:
        runs = " then ".join(f"{name} (x{get_spec(name).scale})" for name in self.passes)
        if self.resize is None:
            return runs
        w, h = self.input_size
        return (f"{runs}, then {self.resize} resize {w * self.model_scale}x{h * self.model_scale} -> "
                f"{self.output_size[0]}x{self.output_size[1]} (x{self.scale:.4g})")


def _chains(scales: List[int]) -> Dict[int, List[Tuple[int, ...]]]:
    return {n: [tuple(sorted(c)) for c in combinations_with_replacement(sorted(scales), n)]
            for n in range(1, MAX_PASSES + 1)}


def plan_resize(width: int, height: int, model_name: str, *, outscale: Any = None, out_width: Any = None,
                out_height: Any = None, long_side: Any = None, max_input_pixels: int = MAX_INPUT_PIXELS,
                max_output_pixels: int = MAX_OUTPUT_PIXELS) -> ResizePlan:
    """Which models to run and how to resize, checked against the pixel limits; InputError when impossible."""
    out_w, out_h, scale = target_size(width, height, outscale=outscale, out_width=out_width, out_height=out_height,
                                      long_side=long_side)
    if width * height > max_input_pixels:
        have, limit = format_megapixels(width * height, max_input_pixels)
        raise InputError(f"input {width}x{height} is {have}, over the limit of {limit}; downscale or crop it first")
    if out_w * out_h > max_output_pixels:
        have, limit = format_megapixels(out_w * out_h, max_output_pixels)
        raise InputError(f"{out_w}x{out_h} ({have}) is over the output limit of {limit}; ask for a smaller size")
    models = family_models(model_name)
    chains = _chains(list(models))
    wanted = max(scale, 1.0)  # a shrink still runs one pass (the model's detail, then an area downsize)

    def fits(chain: Tuple[int, ...]) -> bool:
        product = 1
        for s in chain:
            product *= s
            if width * height * product * product > max_output_pixels:
                return False
        return True

    n = next(n for n in chains if any(math.prod(c) >= wanted - 1e-9 for c in chains[n]))
    product, choice = min((math.prod(c), c) for c in chains[n] if math.prod(c) >= wanted - 1e-9)
    overshoot = product > OVERSHOOT_LIMIT * wanted and n > 1
    if overshoot or not fits(choice):  # fewer/smaller passes that fit, the rest enlarged with Lanczos
        pool = [c for k in range(1, n if overshoot else n + 1) for c in chains[k] if fits(c)]
        choice = max(pool, key=lambda c: (math.prod(c), -len(c)), default=None)
    if choice is None:
        smallest = min(models)
        have, limit = format_megapixels(width * height * smallest * smallest, max_output_pixels)
        raise InputError(f"even one x{smallest} pass of {width}x{height} would be {have}, over the output limit of "
                         f"{limit}; use a smaller input")
    product = math.prod(choice)
    made = (width * product, height * product)
    resize = None if made == (out_w, out_h) else ("area" if made[0] >= out_w and made[1] >= out_h else "lanczos")
    return ResizePlan([models[s] for s in choice], product, (width, height), (out_w, out_h), scale, resize)


def resize_float(image: np.ndarray, size_wh: Tuple[int, int], method: str) -> np.ndarray:
    """HxWxC float [0,1] -> size (w, h): 'area' (OpenCV INTER_AREA) or 'lanczos' (INTER_LANCZOS4, clipped)."""
    interpolation = cv2.INTER_AREA if method == "area" else cv2.INTER_LANCZOS4
    out = cv2.resize(np.ascontiguousarray(image, dtype=np.float32), (int(size_wh[0]), int(size_wh[1])),
                     interpolation=interpolation)
    out = out.reshape(int(size_wh[1]), int(size_wh[0]), -1)
    return np.clip(out, 0.0, 1.0) if method != "area" else out


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
