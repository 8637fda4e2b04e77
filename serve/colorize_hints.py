"""Checking user colour hints before they reach the model (encoding: models/hints.py).

A hint is (x, y, colour): x, y a pixel of the photo as the user sees it (0-based, x right, y down;
fractions allowed) and colour one of
  - "#rrggbb" / "#rgb" (what gr.ColorPicker gives), or "rgb(r, g, b)" / "rgba(r, g, b, a)" with r, g, b
    in 0..255 (alpha ignored),
  - three numbers r, g, b in 0..255 (8-bit values; 0.5 is a valid, very dark, value).
Nothing is clipped silently: a position outside the image, a colour outside 0..255 (or NaN), a
malformed hint or more than MAX_HINTS hints is an InputError that names the hint. Only the colour's
chroma is used; the photo's own lightness is kept.
"""
from __future__ import annotations

import math
import re
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from models.hints import Hint

from .contract import InputError

MAX_HINTS = 256  # far more than anyone clicks; thousands would only paint the image with patches
_HEX = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_RGB_FUNC = re.compile(r"^rgba?\(([^)]*)\)$")


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise InputError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def parse_colour(colour: Any, what: str = "hint colour") -> tuple:
    """A colour as the API takes it -> (r, g, b) floats in [0, 1]; InputError otherwise."""
    if isinstance(colour, str):
        text = colour.strip()
        match = _HEX.match(text)
        if match:
            digits = match.group(1)
            digits = "".join(c * 2 for c in digits) if len(digits) == 3 else digits
            return tuple(int(digits[i:i + 2], 16) / 255.0 for i in (0, 2, 4))
        match = _RGB_FUNC.match(text.replace(" ", ""))
        if not match:
            raise InputError(f"{what} {colour!r} is not a colour: use '#rrggbb', 'rgb(r, g, b)' or [r, g, b] in 0..255")
        try:
            parts = [float(p) for p in match.group(1).split(",")]
        except ValueError:
            raise InputError(f"{what} {colour!r} has a non-numeric component") from None
        colour = parts[:3] if len(parts) in (3, 4) else parts
    if not isinstance(colour, (list, tuple)) or len(colour) != 3:
        raise InputError(f"{what} {colour!r} must be '#rrggbb' or three numbers r, g, b in 0..255")
    values = [_number(c, what) for c in colour]
    if any(v < 0 or v > 255 for v in values):
        raise InputError(f"{what} {list(colour)} is out of range: r, g, b must be in 0..255")
    return tuple(v / 255.0 for v in values)


def check_hints(hints: Optional[Sequence[Any]], width: int, height: int) -> List[Hint]:
    """Validated hints as (x, y, (r, g, b) in [0, 1]); [] for none (automatic colorization)."""
    if hints is None:
        return []
    if isinstance(hints, (str, bytes, dict)) or not isinstance(hints, Sequence):
        raise InputError("hints must be a list of [x, y, colour] (colour '#rrggbb' or [r, g, b] in 0..255)")
    if len(hints) > MAX_HINTS:
        raise InputError(f"{len(hints)} hints is too many: at most {MAX_HINTS} (a few well-placed ones work best)")
    checked = []
    for i, hint in enumerate(hints, 1):
        if isinstance(hint, dict):
            hint = (hint.get("x"), hint.get("y"), hint.get("colour", hint.get("color")))
        if not isinstance(hint, (list, tuple)) or len(hint) != 3:
            raise InputError(f"hint {i} must be [x, y, colour], got {hint!r}")
        x, y = _number(hint[0], f"hint {i}'s x"), _number(hint[1], f"hint {i}'s y")
        if not (0 <= x < width and 0 <= y < height):
            raise InputError(f"hint {i} at ({x:g}, {y:g}) is outside the {width}x{height} image "
                             f"(x must be in 0..{width - 1}, y in 0..{height - 1})")
        checked.append((x, y, parse_colour(hint[2], f"hint {i}'s colour")))
    return checked


def stroke_hints(layers: Sequence[Any], width: int, height: int, step: int = 8,
                 limit: int = MAX_HINTS) -> Tuple[List[list], str]:
    """Painted brush strokes -> ([x, y, "#rrggbb"] hints in the photo's pixels, a note; "" when nothing
    was left out).

    `layers`: HxWx4 uint8 RGBA images (an image editor's paint layers, any size: positions are scaled to
    the width x height photo); a pixel is painted where alpha >= 64 (a half-transparent brush counts,
    faint anti-aliased edges do not), later layers over earlier ones.
    One hint per `step` x `step` cell of the layer that holds paint (the painted pixel nearest the cell's
    centre, in its own colour), so a stroke becomes a row of hints along it. More than `limit` hints are
    thinned evenly to `limit` (never an error) and the note says so."""
    painted, colour = None, None
    for layer in layers:
        arr = np.asarray(layer)
        if arr.ndim != 3 or arr.shape[2] != 4:
            raise InputError(f"a stroke layer must be an RGBA image, got shape {arr.shape}")
        if painted is None:
            painted = np.zeros(arr.shape[:2], bool)
            colour = np.zeros(arr.shape[:2] + (3,), np.uint8)
        if arr.shape[:2] != painted.shape:
            raise InputError(f"stroke layers differ in size ({arr.shape[1]}x{arr.shape[0]} and "
                             f"{painted.shape[1]}x{painted.shape[0]})")
        here = arr[..., 3] >= 64
        colour[here] = arr[..., :3][here]
        painted |= here
    if painted is None or not painted.any():
        return [], ""
    lh, lw = painted.shape
    ys, xs = np.nonzero(painted)
    cell = (ys // step) * ((lw + step - 1) // step) + xs // step
    centre_dist = np.abs(ys % step - step / 2) + np.abs(xs % step - step / 2)
    order = np.lexsort((centre_dist, cell))  # by cell, nearest the centre first
    first = order[np.r_[True, cell[order][1:] != cell[order][:-1]]]
    hints = [[min(width - 1, int((x + 0.5) * width / lw)), min(height - 1, int((y + 0.5) * height / lh)),
              "#" + "".join(f"{int(c):02x}" for c in colour[y, x])] for y, x in zip(ys[first], xs[first])]
    if len(hints) <= limit:
        return hints, ""
    keep = np.linspace(0, len(hints) - 1, max(0, limit)).round().astype(int) if limit > 0 else []
    note = (f"the strokes gave {len(hints)} hint points, over the limit of {limit}: "
            f"{len(keep)} evenly spaced ones are used")
    return [hints[i] for i in keep], note


def check_hint_maps(hint_ab: Any, hint_mask: Any, width: int, height: int) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Dense hints as the model takes them, at the image's own size (Triton's hint_ab / hint_mask):
    hint_ab HxWx2 (Lab a, b / 110, so within -1..1), hint_mask HxW or HxWx1 in 0..1 (1 = hinted).
    Returns (ab float32 HxWx2, mask float32 HxW), or None for an all-zero mask (automatic)."""
    ab = np.asarray(hint_ab, dtype=np.float32)
    mask = np.asarray(hint_mask, dtype=np.float32)
    mask = mask[..., 0] if mask.ndim == 3 and mask.shape[2] == 1 else mask
    if ab.shape != (height, width, 2) or mask.shape != (height, width):
        raise InputError(f"hint_ab must be {height}x{width}x2 and hint_mask {height}x{width}(x1), the image's size; "
                         f"got {ab.shape} and {np.shape(hint_mask)}")
    if not (np.isfinite(ab).all() and np.isfinite(mask).all()):
        raise InputError("hint_ab and hint_mask must be finite numbers")
    if np.abs(ab).max(initial=0) > 1.0 or mask.min(initial=0) < 0 or mask.max(initial=0) > 1:
        raise InputError("hint_ab must be within -1..1 (Lab a, b / 110) and hint_mask within 0..1")
    return (ab, mask) if mask.any() else None
