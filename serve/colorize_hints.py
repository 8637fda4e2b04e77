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
from typing import Any, List, Optional, Sequence

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
