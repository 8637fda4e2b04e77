"""The colour-hint canvas of the colorization tab: click the grey photo to place a hint.

Gradio's own components only: a static gr.Image showing the photo grey (downscaled to PREVIEW_SIDE)
with the hints drawn on it, whose `select` event gives the clicked pixel; a gr.ColorPicker for the
colour; a gr.JSON list of [x, y, "#rrggbb"] in the photo's own pixels (editable, and the /colorize
endpoint's `hints` argument); buttons to undo the last hint or clear them all. The helper events
are private (not API endpoints); each re-reads the upload through ui.inputs' checks.

Brush strokes: a second view, a gr.ImageEditor over the same grey preview, takes strokes in any
colour; "Use the strokes as hints" turns the painted pixels into point hints along them
(serve.colorize_hints.stroke_hints: one per STROKE_STEP-px cell, thinned evenly to the 256-hint limit
with a note), appends them to the same list and clears the strokes. So the API stays one list of
[x, y, colour]. The editor's layers are read from its own blob store (bytes) or, for a FileData
payload, only from the upload folder (ui.inputs.uploaded_file); never from any other path.
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import cv2
import gradio as gr
import numpy as np

from .common import limits, load_image, save_png, user_errors, workdir

PREVIEW_SIDE = 768
DOT_RADIUS = 6
STROKE_STEP = 12  # preview px between hints along a stroke (the model paints each as a 5-px patch at <=512 px)
BRUSH_COLOURS = ["#3070d0", "#87b5e5", "#5d8a3c", "#2f5d2a", "#c8102e", "#e8b89a", "#8b5a2b", "#f2c230",
                 "#7a3e9d", "#e07b39"]


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


def _decode_layer(data, what: str) -> np.ndarray:
    """RGBA uint8 of one paint layer (bytes or an uploaded file), with the app's pixel limit."""
    import io

    from PIL import Image

    from .inputs import uploaded_file

    source = data if isinstance(data, (bytes, bytearray)) else uploaded_file(data, what)[0]
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source) as im:
            if im.width * im.height > limits().sr_input_pixels:
                raise gr.Error(f"The {what} is {im.width}x{im.height}, over the pixel limit.")
            return np.asarray(im.convert("RGBA"))
    except (OSError, ValueError, Image.DecompressionBombError):
        raise gr.Error(f"The {what} could not be read as an image.") from None


def editor_layers(editor: gr.ImageEditor, payload: Any) -> List[np.ndarray]:
    """The paint layers of an ImageEditor payload (preprocess=False): blobs the browser sent, else FileData."""
    if not isinstance(payload, dict):
        return []
    blobs = editor.blob_storage.pop(payload.get("id"), None) if payload.get("id") else None
    layers = blobs.layers if blobs is not None else (payload.get("layers") or [])
    return [_decode_layer(layer, "stroke layer") for layer in layers if layer is not None]


@user_errors
def add_strokes(editor: gr.ImageEditor, image: Any, hints: Optional[list], payload: Any):
    """The painted strokes become hints appended to the list; the strokes are cleared."""
    from serve.colorize_hints import MAX_HINTS, stroke_hints

    if not image:
        raise gr.Error("Upload a photo first, then paint colour strokes on it.")
    preview, (w, h) = _grey_preview(image)
    hints = list(hints or [])
    new, note = stroke_hints(editor_layers(editor, payload), w, h, STROKE_STEP, MAX_HINTS - len(hints))
    if not new and not note:
        raise gr.Error("No strokes found: paint on the grey photo with the brush first.")
    hints += new
    if note:
        gr.Warning(note)
    text = f"{len(new)} hint(s) from the strokes" + (f"; {note}." if note else ".")
    return _draw(preview, (w, h), hints), hints, text, _draw(preview, (w, h), [])


def wire_hint_canvas(image: gr.Image) -> gr.JSON:
    """Build the canvas under `image`; returns the gr.JSON that holds the hints."""
    with gr.Accordion("Colour hints (optional): click the grey photo or paint strokes on it", open=True):
        with gr.Tab("Click points"):
            canvas = gr.Image(label="Click to place a hint in the chosen colour", type="filepath",
                              interactive=False, height=320, elem_id="colorize-hint-canvas")
            colour = gr.ColorPicker(value="#3070d0", label="Hint colour", elem_id="colorize-hint-colour")
        with gr.Tab("Paint strokes"):
            editor = gr.ImageEditor(label="Paint strokes in the colours you want", type="numpy", sources=[],
                                    transforms=[], layers=False, height=320, elem_id="colorize-hint-strokes",
                                    brush=gr.Brush(colors=BRUSH_COLOURS, default_color=BRUSH_COLOURS[0],
                                                   default_size=8, color_mode="defaults"),
                                    eraser=gr.Eraser(default_size=12))
            use_strokes = gr.Button("Use the strokes as hints", size="sm", elem_id="colorize-use-strokes")
            stroke_note = gr.Markdown(elem_id="colorize-stroke-note")
        with gr.Row():
            undo = gr.Button("Undo last hint", size="sm")
            clear = gr.Button("Clear hints", size="sm")
        hints = gr.JSON(value=[], label="Hints [x, y, colour] (photo pixels; empty = automatic)",
                        elem_id="colorize-hints")
    common = {"api_visibility": "private", "preprocess": False, "queue": False}
    image.change(show_canvas, [image], [canvas, hints], **common).then(
        lambda img: redraw(img, [])[0], [image], [editor], **common)
    use_strokes.click(lambda img, h, p: add_strokes(editor, img, h, p), [image, hints, editor],
                      [canvas, hints, stroke_note, editor], **common)
    canvas.select(add_hint, [image, hints, colour], [canvas, hints], **common)
    undo.click(lambda img, h: redraw(img, h, True), [image, hints], [canvas, hints], **common)
    clear.click(lambda img, h: redraw(img, h, False), [image, hints], [canvas, hints], **common)
    return hints
