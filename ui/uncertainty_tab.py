"""Uncertainty tab: K stochastic passes of an SR model through serve.uncertainty.

Shows the cropped LR input, one prediction, the mean of K passes, the per-pixel std heatmap with its
colorbar, galleries of the most- and least-certain patches, and a zip of everything. serve.uncertainty
is imported lazily: while it is missing the tab says "not available yet". The input is centre-cropped
so that K x pixels fits the machine's budget (Limits.uncertainty_pixel_passes).
"""
from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any, List, Optional, Sequence

import gradio as gr
import numpy as np
from PIL import Image

from .common import (NOT_AVAILABLE, backend_choices, checked_backend, example_path, image_upload, limits, load_image, models_for,
                     save_png, user_errors, workdir)
from .cancel import cancel_on, start_job, stop_button
from .inputs import one_of, whole_number

DEFAULT_PASSES, MIN_PASSES, MAX_PASSES = 40, 2, 128
TTA_VIEWS = 8  # the flips/rotations estimator has at most 8 passes
PATCH = 64  # LR patch side: the crop is whole patches, and the galleries rank patches
ESTIMATORS = ("mc", "tta")
SHOWN = ("estimator", "passes", "mean_std", "max_std", "heatmap_max_std", "seconds", "backend")


def module() -> Optional[ModuleType]:
    try:
        mod = importlib.import_module("serve.uncertainty")
    except ImportError:
        return None
    return mod if hasattr(mod, "estimate_uncertainty") and hasattr(mod, "zip_outputs") else None


def available_models() -> List[str]:
    return [s.name for s in models_for("sr") if s.mc_dropout] if module() else []


def to_float_image(value: Any) -> np.ndarray:
    """An array (float [0,1] or uint8), PIL image or image path -> float HxWxC in [0,1]."""
    if isinstance(value, (str, Path)):
        value = Image.open(value)
    if isinstance(value, Image.Image):
        value = np.asarray(value.convert("RGB"))
    arr = np.asarray(value)
    arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
    arr = np.clip(np.nan_to_num(arr), 0.0, 1.0)
    return arr[..., None] if arr.ndim == 2 else arr


def _fit_height(arr: np.ndarray, height: int) -> np.ndarray:
    """Nearest-neighbour resize to `height` (LR patches stay visibly pixelated next to the prediction)."""
    if arr.shape[0] == height:
        return arr
    width = max(1, round(arr.shape[1] * height / arr.shape[0]))
    img = Image.fromarray(np.clip(np.rint(arr * 255), 0, 255).astype(np.uint8))
    return np.asarray(img.resize((width, height), Image.NEAREST), dtype=np.float32) / 255.0


def strip(images: Sequence[Any], gap: int = 4) -> np.ndarray:
    """Images side by side at one height, white gaps between, for one gallery entry (LR | mean | std)."""
    arrs = [to_float_image(im) for im in images]
    arrs = [np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a[..., :3] for a in arrs]
    height = max(a.shape[0] for a in arrs)
    arrs = [_fit_height(a, height) for a in arrs]
    spacer = np.ones((height, gap, 3), np.float32)
    return np.concatenate([p for a in arrs for p in (a, spacer)][:-1], axis=1)


def gallery(patches: Sequence[Sequence[Any]], folder: Path, prefix: str, label: str) -> List[tuple]:
    return [(save_png(strip(list(triplet)[:3]), folder / f"{prefix}_{i:02d}.png"), f"{label} #{i + 1}: LR | mean | std")
            for i, triplet in enumerate(patches or [])]


def summary_text(summary: dict) -> str:
    return " · ".join(f"**{k}** {summary[k]:.4g}" if isinstance(summary[k], float) else f"**{k}** {summary[k]}"
                      for k in SHOWN if k in summary)


def fit_budget(rgb: np.ndarray, passes: int, budget: int, patch: int = PATCH) -> np.ndarray:
    """Centre crop, in whole patches, so that passes x pixels stays within `budget` (at least one patch)."""
    h, w = rgb.shape[:2]
    max_pixels = max(budget // passes, patch * patch)
    if h * w <= max_pixels:
        return rgb
    side_h = min(h // patch * patch, max(patch, int((max_pixels * h / w) ** 0.5) // patch * patch))
    side_w = min(w // patch * patch, max(patch, max_pixels // side_h // patch * patch))
    top, left = (h - side_h) // 2, (w - side_w) // 2
    return np.ascontiguousarray(rgb[top:top + side_h, left:left + side_w])


@user_errors
def uncertainty_map(image, model: Optional[str] = None, passes: int = DEFAULT_PASSES, estimator: str = "mc",
                    backend: str = "auto", progress=gr.Progress(), request: gr.Request = None):
    """Map where a super-resolution model is unsure: K stochastic passes over a centre crop of the photo.

    Args:
        image: the (low-resolution) photo, at least 64 px a side.
        model: an SR model with Monte-Carlo dropout, e.g. "flashsr_x2"; empty for the default.
        passes: K, the number of stochastic passes (2 to 128).
        estimator: "mc" (Monte-Carlo dropout) or "tta" (the 8 flips/rotations).
        backend: "auto", "onnx", "torch" or a specific kind such as "onnx-cpu".

    Returns:
        The cropped input, one prediction, the mean of K passes, the std heatmap and its colorbar, galleries
        of the most and least certain patches, a zip of everything, a summary and its figures.
    """
    mod = module()
    models = available_models()
    if mod is None or not models:
        raise gr.Error("The uncertainty map is not available yet (serve.uncertainty is missing, or no SR model "
                       "with Monte-Carlo dropout has weights).")
    model = one_of(model, "model", models, default=models[0])
    passes = whole_number(passes, "K (passes)", MIN_PASSES, MAX_PASSES)
    estimator = one_of(estimator, "estimator", ESTIMATORS, default="mc")
    backend = checked_backend(backend)
    lim = limits()
    decoded = load_image(image, max_pixels=lim.sr_input_pixels, min_side=PATCH)
    full = (decoded.width, decoded.height)
    runs = min(passes, TTA_VIEWS) if estimator == "tta" else passes
    decoded.rgb, decoded.alpha = fit_budget(decoded.rgb, runs, lim.uncertainty_pixel_passes), None

    with start_job(request) as job:
        def report(fraction: float, desc: str = "") -> None:
            job.check()
            if progress is not None:
                progress(float(fraction), desc=desc or "stochastic passes")

        result = mod.estimate_uncertainty(decoded, model, passes=passes, backend=backend, estimator=estimator,
                                          patch=PATCH, progress=report)
    out = workdir("uncertainty")
    images = [save_png(to_float_image(getattr(result, name)), out / f"{name}.png")
              for name in ("cropped_lr", "one_prediction", "mean_prediction", "heatmap", "colorbar")]
    most = gallery(result.most_certain, out, "most_certain", "most certain")
    least = gallery(result.least_certain, out, "least_certain", "least certain")
    zip_path = mod.zip_outputs(result, out / f"uncertainty_{model}_{estimator}_K{passes}.zip")
    summary = result.summary if isinstance(result.summary, dict) else {"summary": str(result.summary)}
    crop = result.cropped_lr.shape
    text = (f"**{model}** on a {crop[1]}×{crop[0]} centre crop of the {full[0]}×{full[1]} input "
            f"(whole {PATCH}-px patches).<br>{summary_text(summary)}")
    return (*images, most, least, str(zip_path), text, summary)


def build() -> None:
    models = available_models()
    if not models:
        gr.Markdown(NOT_AVAILABLE.format(what="the uncertainty estimator (serve.uncertainty) is missing",
                                         task="Monte-Carlo-dropout SR"), elem_id="uncertainty-note")
    gr.Markdown("Runs the SR model K times with dropout on and shows where the passes disagree: bright pixels in "
                "the std heatmap are where the model is unsure. Large inputs are centre-cropped to keep K passes "
                f"within {limits().uncertainty_pixel_passes / 1e6:.0f} MP of work on this machine.")
    with gr.Row():
        with gr.Column(scale=1):
            image = image_upload("Input image (low resolution)", height=260, elem_id="uncertainty-tab-input")
            with gr.Row():
                model = gr.Dropdown(models, value=models[0] if models else None, label="Model",
                                    interactive=bool(models))
                estimator = gr.Radio([("MC dropout", "mc"), ("flips/rotations (TTA)", "tta")], value="mc",
                                     label="Estimator")
            passes = gr.Slider(MIN_PASSES, MAX_PASSES, value=DEFAULT_PASSES, step=1,
                               label="K (stochastic passes; TTA uses up to 8)")
            backend = gr.Dropdown(backend_choices(), value="auto", label="Backend")
            with gr.Row():
                run = gr.Button("Estimate uncertainty", variant="primary", interactive=bool(models),
                                elem_id="uncertainty-run")
                stop = stop_button()
            summary = gr.Markdown(label="Summary")
            zip_file = gr.File(label="All outputs (zip)")
        with gr.Column(scale=2):
            with gr.Row():
                lr = gr.Image(label="Cropped LR input", type="filepath", interactive=False)
                one = gr.Image(label="One prediction", type="filepath", interactive=False)
                mean = gr.Image(label="Mean of K passes", type="filepath", interactive=False)
            with gr.Row():
                heat = gr.Image(label="Per-pixel std (heatmap)", type="filepath", interactive=False, scale=3,
                               elem_id="uncertainty-heat")
                bar = gr.Image(label="Colorbar", type="filepath", interactive=False, scale=1)
    with gr.Row():
        most = gr.Gallery(label="Most certain patches", columns=2, height=260, object_fit="contain")
        least = gr.Gallery(label="Least certain patches", columns=2, height=260, object_fit="contain")
    with gr.Accordion("Summary (all figures)", open=False):
        details = gr.JSON(label="Summary (all figures)")
    examples = [[p] for p in (example_path("sr_car_lr.png"), example_path("sr_tents_lr.png")) if p]
    if examples:
        gr.Examples(examples, [image], cache_examples=False)
    event = run.click(uncertainty_map, [image, model, passes, estimator, backend],
                      [lr, one, mean, heat, bar, most, least, zip_file, summary, details],
                      api_name="uncertainty", concurrency_id="compute", preprocess=False)
    cancel_on(stop, event)
