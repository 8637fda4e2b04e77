"""Colorization tab: grey (or colour, turned grey first) in, colour out, before/after slider.

Colour hints (hint models, e.g. colorize_hint_cls): the uploaded photo is shown grey; clicking it adds
a hint at that point in the colour of the gr.ColorPicker (ui/colorize_hints_ui.py draws them). The
hints live in a gr.JSON list of [x, y, "#rrggbb"] in the photo's pixels, which is also the /colorize
endpoint's `hints` argument (checked by serve/colorize_hints.py; none = automatic).

It runs when a model with task 'colorize' has weights and serve/colorize.py provides
    colorize(image: DecodedImage, model_name: str, backend: str = "auto", progress=None) -> result
with result.image (float HxWx3 in [0,1]) and result.info (as serve.upscale's). Until both exist the
tab shows a "not available yet" note, its button is disabled and the API endpoint answers with a
clear error.

Vividness: a slider (and the endpoints' last argument) multiplying the model's own calibrated colour,
0 to models.io.MAX_VIVIDNESS, 1 by default (serve.colorize); hints stay exact.

Video (ui/colorize_video_ui.py, endpoint /colorize_video): a clip coloured with stable colours, hints on
its first frame.
"""
from __future__ import annotations

from typing import Callable, List, Optional

import gradio as gr
import numpy as np

from models.io import DEFAULT_VIVIDNESS, MAX_VIVIDNESS

from . import colorize_video_ui
from .colorize_hints_ui import wire_hint_canvas
from .common import (
    NOT_AVAILABLE,
    backend_choices,
    checked_backend,
    checked_precision,
    describe_backend,
    example_path,
    image_upload,
    limits,
    load_image,
    models_for,
    precision_select,
    progress_callback,
    save_png,
    user_errors,
    workdir,
)
from .inputs import checked_vividness, one_of


def colorizer() -> Callable:
    from serve.colorize import colorize

    return colorize


def available_models() -> List[str]:
    """Trained colorizers, the default (serve.colorize.DEFAULT_MODEL) first."""
    from serve.colorize import DEFAULT_MODEL

    names = [s.name for s in models_for("colorize")]
    return sorted(names, key=lambda n: n != DEFAULT_MODEL)


def vividness_slider() -> gr.Slider:
    return gr.Slider(0.0, MAX_VIVIDNESS, value=DEFAULT_VIVIDNESS, step=0.05, label="Vividness",
                     info="1 = the colour calibrated for accuracy; higher = more vivid but more often wrong "
                          "(the automatic colour is cautious); 0 = grey, or only your hints' colour. Hints stay exact.",
                     elem_id="colorize-vividness")


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma, replicated to 3 channels (what a grey photograph looks like)."""
    y = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return np.repeat(y[..., None], 3, axis=2).astype(np.float32)


@user_errors
def colorize_image(image, model: Optional[str] = None, backend: str = "auto", precision: str = "auto",
                   hints: Optional[list] = None, vividness: Optional[float] = None, progress=gr.Progress()):
    """Colorize a grey (black-and-white) photo; a colour photo is turned grey first.

    Args:
        image: the photo to colorize.
        model: colorization model name; empty for the default (serve.colorize.DEFAULT_MODEL).
        backend: "auto", "onnx", "torch" or a specific kind such as "onnx-cpu".
        precision: "auto" (default: the fastest whose measured loss is within 0.05 dB), "exact fp32" or
            "fast bf16" (OpenVINO, where the CPU has bf16).
        hints: colour hints for hint models: a list of [x, y, colour], x, y pixels of the photo (0-based),
            colour "#rrggbb" or [r, g, b] in 0..255; at most 256; empty or null for automatic colour.
        vividness: colour strength, 0 to 2.5: 1 (default, or null) = the model's calibrated colour, higher =
            more vivid, 0 = only the hints' colour (grey without hints); hints stay exact. Models without it ignore it.

    Returns:
        (grey, colorized) image pair, the downloadable result, a summary and a dict of run details.
    """
    models = available_models()
    if not models:
        raise gr.Error("Colorization is not available yet: no colorization model has been trained.")
    model = one_of(model, "model", models, default=models[0])
    backend = checked_backend(backend)
    precision = checked_precision(precision)
    vividness = checked_vividness(vividness)
    from serve import save_image

    decoded = load_image(image, max_pixels=limits().sr_input_pixels)
    was_colour = not decoded.was_grey
    decoded.rgb, decoded.was_grey = to_grey(decoded.rgb), True  # alpha stays: the result keeps it
    result = colorizer()(decoded, model, backend, progress=progress_callback(progress, "colorizing"),
                         precision=precision, hints=hints, vividness=vividness)
    out = workdir("colorize")
    stem = decoded.name.rsplit(".", 1)[0][:60] or "image"
    grey_png = save_png(decoded.rgb, out / f"{stem}_grey.png")
    colour_png = save_png(result.image[..., :3], out / f"{stem}_{model}.png")
    download = colour_png
    notes = list(decoded.notes)
    if decoded.alpha is not None or getattr(result, "bit_depth", 8) == 16:
        download = str(save_image(result, out / f"{stem}_{model}_full.png"))
        notes += ["the alpha channel is kept in the download"] if decoded.alpha is not None else []
        notes += ["16-bit source: the download is a 16-bit PNG"] if result.bit_depth == 16 else []
    info = dict(result.info)
    info["input_was_colour"] = was_colour
    if notes:
        info["notes"] = notes
    summary = f"**{model}**" + (": the colour input was turned grey first" + (
        " (your hints set the colours)." if info.get("hints") else ".") if was_colour else ".")
    summary += f" {info['hints']} colour hint(s) used." if info.get("hints") else ""
    if info.get("vividness") not in (None, DEFAULT_VIVIDNESS):
        summary += f" Vividness {info['vividness']:g}" + (
            " (it scales the model's own colour; where your hints reach, their colour wins)." if info.get("hints")
            else ".")
    elif info.get("vividness") is None and vividness != DEFAULT_VIVIDNESS:
        summary += " This model has no vividness control: the slider was not used."
    summary += "".join(f" Note: {n}." for n in notes)
    return (grey_png, colour_png), download, summary + "<br>" + describe_backend(info, backend), info


def build() -> None:
    models = available_models()
    if not models:
        gr.Markdown(NOT_AVAILABLE.format(what="no colorization model has been trained yet", task="colorization"),
                    elem_id="colorize-note")
    with gr.Row():
        with gr.Column():
            image = image_upload("Grey or colour photo (colour is turned grey first)", height=320,
                                 elem_id="colorize-input")
            with gr.Row():
                model = gr.Dropdown(models, value=models[0] if models else None, label="Model",
                                    interactive=bool(models))
                backend = gr.Dropdown(backend_choices(), value="auto", label="Backend")
                precision = precision_select()
            vividness = vividness_slider()
            hints = wire_hint_canvas(image)
            run = gr.Button("Colorize", variant="primary", interactive=bool(models), elem_id="colorize-run")
        with gr.Column():
            slider = gr.ImageSlider(label="Grey / colorized", type="filepath", interactive=False,
                                    elem_id="colorize-output")
            download = gr.File(label="Download the result")
            summary = gr.Markdown(label="Summary")
            with gr.Accordion("Run details", open=False):
                details = gr.JSON(label="Run details")
    examples = [[p] for p in (example_path("grey_old_tom_morris.png"), example_path("colour_frame.png")) if p]
    if examples:
        gr.Examples(examples, [image], cache_examples=False)
    run.click(colorize_image, [image, model, backend, precision, hints, vividness],
              [slider, download, summary, details], api_name="colorize", concurrency_id="compute", preprocess=False)
    colorize_video_ui.build(model, backend, hints, vividness)
