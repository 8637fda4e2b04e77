"""Checking what an endpoint receives: uploaded files and parameters, before anything is opened or run.

Every event runs with `preprocess=False`, so handlers get the raw payload from the browser or the API.
Two rules follow:
- A file argument is opened only if it lies inside Gradio's upload folder (resolved, symlinks followed)
  or is one of the app's own examples. Anything else — a server path sent without Gradio's `meta`
  marker, `..` segments, a symlink out of the upload folder — gets one generic message that says
  nothing about whether the path exists.
- Parameters are validated, not coerced: a string "false" is not True, `None` is not a scale, and
  the strings `view_api()` advertises for a choice ("2" for the scale 2) are accepted.
"""
from __future__ import annotations

import base64
import binascii
import math
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple, Union

import gradio as gr

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
NOT_UPLOADED = "not an uploaded file: send it through the app's upload (or gradio_client.handle_file)"
MAX_INLINE_BYTES = 64 * 1024 * 1024  # a data: URL pasted from the clipboard, same cap as an upload

Upload = Tuple[Union[str, bytes], str]  # (path inside the upload folder, or decoded bytes; display name)


class RefusedInput(gr.Error):
    """An argument the user can fix; shown as the endpoint's error message, logged as one line."""

    def __init__(self, message: str):
        super().__init__(message, print_exception=False)


def upload_roots() -> Tuple[Path, ...]:
    """Folders an endpoint may read: Gradio's upload/cache folder and the app's examples."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve(), EXAMPLES_DIR.resolve()


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def checked_path(path: Any, what: str) -> str:
    """`path` resolved (symlinks followed) if it lies inside an upload root; RefusedInput otherwise."""
    if not isinstance(path, (str, os.PathLike)) or not str(path) or "\x00" in str(path):
        raise RefusedInput(f"The {what} is {NOT_UPLOADED}.")
    try:
        resolved = Path(os.path.realpath(path))
    except (OSError, ValueError):
        raise RefusedInput(f"The {what} is {NOT_UPLOADED}.") from None
    if not _inside(resolved, upload_roots()) or not resolved.is_file():
        raise RefusedInput(f"The {what} is {NOT_UPLOADED}.")
    return str(resolved)


def _display_name(payload: dict, path: str) -> str:
    name = payload.get("orig_name") or Path(path).name
    return Path(str(name)).name[:120] or "upload"


def _inline_bytes(url: str, what: str) -> bytes:
    """Decode a `data:` URL (an image pasted from the clipboard)."""
    try:
        header, encoded = url.split(",", 1)
        if ";base64" not in header or len(encoded) > MAX_INLINE_BYTES * 4 // 3 + 4:
            raise ValueError
        return base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error):
        raise RefusedInput(f"The pasted {what} could not be decoded.") from None


def uploaded_file(payload: Any, what: str = "image") -> Upload:
    """(path or bytes, display name) of a file argument: a FileData / VideoData dict or a path string.

    Raises RefusedInput for nothing uploaded, a path outside the upload roots, or a malformed payload.
    """
    if payload is None or payload == "" or payload == {}:
        raise RefusedInput(f"Please upload {'an' if what[0] in 'aeiou' else 'a'} {what} first.")
    if isinstance(payload, (tuple, list)) and len(payload) == 2 and isinstance(payload[1], str):
        payload = {"path": payload[0], "orig_name": payload[1]}
    if hasattr(payload, "model_dump"):  # a FileData model
        payload = payload.model_dump()
    if isinstance(payload, dict) and isinstance(payload.get("video"), dict):  # gr.Video's VideoData
        payload = payload["video"]
    if isinstance(payload, (str, os.PathLike)):
        path = checked_path(payload, what)
        return path, Path(str(payload)).name
    if not isinstance(payload, dict):
        raise RefusedInput(f"The {what} argument must be a file (got {type(payload).__name__}).")
    path, url = payload.get("path"), payload.get("url")
    if not path and isinstance(url, str) and url.startswith("data:"):
        return _inline_bytes(url, what), f"pasted {what}"
    if not path:
        raise RefusedInput(f"The {what} arrived without a file.")
    resolved = checked_path(path, what)
    return resolved, _display_name(payload, resolved)


# --- parameters ---------------------------------------------------------------------------------------

def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def flag(value: Any, name: str) -> bool:
    """A boolean parameter: True or False only (a string or a number is refused, not read by truthiness)."""
    if isinstance(value, bool):
        return value
    raise RefusedInput(f"'{name}' must be true or false, not {_shown(value)}.")


def whole_number(value: Any, name: str, low: int, high: int, *, allowed: Optional[Sequence[int]] = None) -> int:
    """An integer parameter in [low, high] (or one of `allowed`); accepts 4, 4.0 and "4", refuses True."""
    number: Optional[int] = None
    if isinstance(value, bool) or value is None:
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value.strip())
    if allowed is not None:
        if number not in allowed:
            raise RefusedInput(f"'{name}' must be one of {', '.join(map(str, allowed))}, not {_shown(value)}.")
        return number
    if number is None:
        raise RefusedInput(f"'{name}' must be a whole number from {low} to {high}, not {_shown(value)}.")
    if not low <= number <= high:
        raise RefusedInput(f"'{name}' must be from {low} to {high}, not {number}.")
    return number


def real_number(value: Any, name: str, low: float, high: float) -> float:
    """A finite number in [low, high]; accepts numeric strings ("0.5"), refuses NaN, booleans and text."""
    number: Optional[float] = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise RefusedInput(f"'{name}' must be a number from {low:g} to {high:g}, not {_shown(value)}.")
    if not low <= number <= high:
        raise RefusedInput(f"'{name}' must be from {low:g} to {high:g}, not {number:g}.")
    return number


def one_of(value: Any, name: str, choices: Sequence[Any], *, default: Any = None) -> Any:
    """One of `choices` (compared as given, then as text, so "2" picks 2); None/"" picks `default` if set."""
    if (value is None or value == "") and default is not None:
        return default
    for choice in choices:
        if value == choice and type(value) is type(choice):
            return choice
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        for choice in choices:
            if str(value) == str(choice):
                return choice
    listed = ", ".join(map(str, choices)) or "none available"
    raise RefusedInput(f"'{name}' must be one of: {listed} (got {_shown(value)}).")


def some_of(values: Any, name: str, choices: Sequence[Any]) -> list:
    """A list of choices (multi-select), each checked by one_of; at least one."""
    if isinstance(values, (str, int, float)):
        values = [values]
    if not isinstance(values, (list, tuple)) or not values:
        raise RefusedInput(f"Choose at least one of the {name}.")
    return [one_of(v, name, choices) for v in values]


def checked_vividness(value: Any) -> float:
    """The colorizers' vividness argument: a number in [0, MAX_VIVIDNESS] (models.io); None -> the default."""
    from models.io import DEFAULT_VIVIDNESS, MAX_VIVIDNESS

    return DEFAULT_VIVIDNESS if value is None else real_number(value, "vividness", 0.0, MAX_VIVIDNESS)
