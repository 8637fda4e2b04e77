"""The colour-hint canvas of the colorization tab: click the grey photo to place a hint.

Gradio's own components only: a static gr.Image showing the photo grey (downscaled to PREVIEW_SIDE)
with the hints drawn on it, whose `select` event gives the clicked pixel; a gr.ColorPicker for the
colour; a gr.JSON list of [x, y, "#rrggbb"] in the photo's own pixels (editable, and the /colorize
endpoint's `hints` argument); buttons to undo the last hint or clear them all. The helper events
are private (not API endpoints); each re-reads the upload through ui.inputs' checks.
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import cv2
import gradio as gr
import numpy as np

from .common import limits, load_image, save_png, user_errors, workdir

PREVIEW_SIDE = 768
DOT_RADIUS = 6


def _grey_preview(image: Any) -> Tuple[np.ndarray, Tuple[int, int]]:
    """(grey preview HxWx3 float, the photo's (width, height)) of the uploaded photo."""
    decoded = load_image(image, max_pixels=limits().sr_input_pixels)
    rgb = decoded.rgb
    y = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    h, w = y.shape
    factor = min(1.0, PREVIEW_SIDE / max(h, w))
    small = cv2.resize(y.astype(np.float32), (max(1, round(w * factor)), max(1, round(h * factor))),
                       interpolation=cv2.INTER_AREA) if factor < 1 else y.astype(np.float32)
    return np.repeat(small[..., None], 3, axis=2), (w, h)


def _draw(preview: np.ndarray, size: Tuple[int, int], hints: List[list]) -> str:
    """The preview with each hint as a dot of its colour in a black-and-white ring; saved as PNG."""
    from serve.colorize_hints import parse_colour

    canvas = np.ascontiguousarray((preview * 255).astype(np.uint8))
    sx, sy = canvas.shape[1] / size[0], canvas.shape[0] / size[1]
    for x, y, colour in hints:
        centre = (int(x * sx), int(y * sy))
        rgb = tuple(int(round(c * 255)) for c in parse_colour(colour))
        cv2.circle(canvas, centre, DOT_RADIUS + 2, (0, 0, 0), -1)
        cv2.circle(canvas, centre, DOT_RADIUS + 1, (255, 255, 255), -1)
        cv2.circle(canvas, centre, DOT_RADIUS, rgb, -1)
    return save_png(canvas.astype(np.float32) / 255.0, workdir("hints") / "hints.png")


@user_errors
def show_canvas(image: Any):
    """A new photo: show it grey, with no hints."""
    if not image:
        return None, []
    preview, size = _grey_preview(image)
    return _draw(preview, size, []), []


@user_errors
def add_hint(image: Any, hints: Optional[list], colour: str, evt: gr.SelectData):
    """A click on the grey photo at evt.index (preview pixels) adds [x, y, colour] in the photo's pixels."""
    from serve.colorize_hints import check_hints

    if not image:
        raise gr.Error("Upload a photo first, then click it to place colour hints.")
    preview, (w, h) = _grey_preview(image)
    px, py = evt.index
    x = min(w - 1, int(px * w / preview.shape[1]))
    y = min(h - 1, int(py * h / preview.shape[0]))
    hints = list(hints or []) + [[x, y, colour]]
    check_hints(hints, w, h)  # a bad colour or too many hints: the message shows now, not at run time
    return _draw(preview, (w, h), hints), hints


@user_errors
def redraw(image: Any, hints: Optional[list], drop_last: bool = False):
    if not image:
        return None, []
    hints = list(hints or [])[:-1] if drop_last else []
    preview, size = _grey_preview(image)
    return _draw(preview, size, hints), hints


def wire_hint_canvas(image: gr.Image) -> gr.JSON:
    """Build the canvas under `image`; returns the gr.JSON that holds the hints."""
    with gr.Accordion("Colour hints (optional): click the grey photo to choose a colour there", open=True):
        canvas = gr.Image(label="Click to place a hint in the chosen colour", type="filepath", interactive=False,
                          height=320, elem_id="colorize-hint-canvas")
        with gr.Row():
            colour = gr.ColorPicker(value="#3070d0", label="Hint colour", elem_id="colorize-hint-colour")
            undo = gr.Button("Undo last hint", size="sm")
            clear = gr.Button("Clear hints", size="sm")
        hints = gr.JSON(value=[], label="Hints [x, y, colour] (photo pixels; empty = automatic)",
                        elem_id="colorize-hints")
    common = {"api_visibility": "private", "preprocess": False, "queue": False}
    image.change(show_canvas, [image], [canvas, hints], **common)
    canvas.select(add_hint, [image, hints, colour], [canvas, hints], **common)
    undo.click(lambda img, h: redraw(img, h, True), [image, hints], [canvas, hints], **common)
    clear.click(lambda img, h: redraw(img, h, False), [image, hints], [canvas, hints], **common)
    return hints
