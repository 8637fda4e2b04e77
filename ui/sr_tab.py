"""Super-resolution tab: upload -> model/scale/tile/backend -> before/after slider, download, metrics."""
from __future__ import annotations

from typing import Any, Dict, List

import gradio as gr
import numpy as np

from common.metrics import detail_ratio_y, gmsd_y, psnr_y, ssim_y
from common.resize import bicubic_downscale, bicubic_resize, mod_crop
from common.image_write import EXTENSIONS, FORMATS
from models import get_spec, resolve_name
from serve import save_image

from . import sr_batch
from .cancel import cancel_on, start_job, stop_button
from .common import (backend_choices, checked_backend, describe_backend, example_path, image_upload, limits,
                     load_image, models_for, progress_callback, save_png, user_errors, workdir)
from .inputs import RefusedInput, flag, one_of, real_number, whole_number

DEFAULT_TILE = 256
MIN_TILE = 128  # FlashSR tiles overlap by ~52 px: smaller tiles would be mostly overlap
MAX_TILE = 1024
DEFAULT_QUALITY = 95
# Compare mode: metric(sr, hr, crop) and the digits shown, for the model and for bicubic.
COMPARE_METRICS = {"psnr_y": (psnr_y, 3), "ssim_y": (ssim_y, 4), "gmsd_y": (gmsd_y, 4),
                   "detail_ratio_y": (detail_ratio_y, 3)}


def sr_families() -> Dict[str, List[int]]:
    """{'flashsr': [2, 4], ...}: trained SR models by family, with their scales, in registry order
    (the flagship first, then the seed lineage)."""
    families: Dict[str, List[int]] = {}
    for spec in models_for("sr"):
        families.setdefault(spec.name.rsplit("_x", 1)[0], []).append(spec.scale)
    return {k: sorted(v) for k, v in families.items()}


def resolve_family(model: Any, scale: Any):
    """The spec of (family, scale) or of a full name; RefusedInput for anything not trained."""
    families = sr_families()
    full_names = [f"{family}_x{s}" for family, scales in families.items() for s in scales]
    model = one_of(model, "model", list(families) + full_names)
    family = model if model in families else model.rsplit("_x", 1)[0]
    return resolve_name(model, whole_number(scale, "scale", 1, 8, allowed=families[family]))


def _scale_choices(scales: List[int]) -> List[tuple]:
    return [(f"×{s}", str(s)) for s in scales]


def _check_tile(tile) -> int:
    tile = whole_number(tile, "tile", 0, MAX_TILE)
    if tile != 0 and tile < MIN_TILE:
        raise RefusedInput(f"Tile size {tile} is too small: use 0 (whole image at once) or at least {MIN_TILE}.")
    return tile


@user_errors
def upscale_image(image, model: str, scale: int, tile: int = DEFAULT_TILE, backend: str = "auto",
                  compare: bool = False, out_format: str = "png", quality: int = DEFAULT_QUALITY,
                  outscale: float = 0, progress=gr.Progress(), request: gr.Request = None):
    """Super-resolve (upscale) one photo with a trained network.

    Args:
        image: the photo to upscale (PNG, JPEG, WebP, TIFF, BMP, GIF; up to the machine's pixel limit).
        model: model family, e.g. "flashsr" (default, fastest and best PSNR), or a full name like "flashsr_x4".
        scale: 2 or 4 (the scales the chosen model has).
        tile: tile side in input pixels, 0 for the whole image at once, else at least 128.
        backend: "auto" (fastest that loads), "onnx", "torch" or a specific kind such as "onnx-cpu".
        compare: true to downscale the photo by `scale` first and report PSNR/SSIM against the original.
        out_format: the download's format: "png", "jpeg", "webp", "webp-lossless" or "tiff".
        quality: 1-100 for JPEG/WebP (ignored by the lossless formats).
        outscale: any output scale up to 16 (e.g. 1.5, 3, 6, 8): the family's models are chained and the
            result resized; 0 keeps the model's `scale`.

    Returns:
        (bicubic, upscaled) image pair, the downloadable result, a summary and a dict of run details.
    """
    spec = resolve_family(model, scale)
    tile, backend, compare = _check_tile(tile), checked_backend(backend), flag(compare, "compare")
    out_format = one_of(out_format, "out_format", FORMATS, default="png")
    quality = whole_number(quality, "quality", 1, 100)
    outscale = real_number(outscale, "outscale", 0, 16)
    if outscale and compare and outscale != spec.scale:
        raise RefusedInput("Compare mode measures the model at its own scale: set outscale to 0 to compare.")
    lim, s = limits(), spec.scale
    decoded = load_image(image, max_pixels=lim.sr_input_pixels * (s * s if compare else 1),
                         min_side=8 * (s if compare else 1))
    hr = None
    if compare:
        hr = mod_crop(decoded.rgb, s)
        decoded.rgb = bicubic_downscale(hr, s)
        decoded.alpha = None
    with start_job(request) as job:
        result = _run(decoded, spec.name, backend, tile, outscale, progress_callback(progress, "upscaling", job))
    out = workdir("sr")
    stem = decoded.name.rsplit(".", 1)[0][:60] or "image"
    after = result.image
    before = bicubic_resize(np.concatenate([decoded.rgb, decoded.alpha[..., None]], axis=2)
                            if decoded.alpha is not None else decoded.rgb, after.shape[:2])
    after_png = save_png(after, out / f"{stem}_{spec.name}.png")
    before_png = save_png(before, out / f"{stem}_bicubic.png")
    download = str(save_image(result, out / f"{stem}_{spec.name}_out{EXTENSIONS[out_format]}",
                              format=out_format, quality=quality, exif=decoded.exif))
    info = dict(result.info)
    info["download_bits"] = info.get("saved", {}).get("bit_depth", result.bit_depth)
    lines = [f"**{info.get('run') or spec.name}**: {info['input_size'][0]}×{info['input_size'][1]} → "
             f"{info['output_size'][0]}×{info['output_size'][1]} in {info['seconds']:.2f} s — {spec.description}",
             describe_backend(info, backend)]
    if compare:
        lines.append(_compare(after[..., :3], decoded.rgb, hr, s, info))
    notes = list(decoded.notes) + list(info.get("saved", {}).get("notes", []))
    if decoded.was_grey:
        notes.append("grey input: upscaled as RGB, returned grey")
    if decoded.alpha is not None:
        notes.append("alpha channel resized bicubically beside the model")
    if notes:
        info["notes"] = notes
        lines.append("Notes: " + "; ".join(notes) + ".")
    return (before_png, after_png), download, "<br>".join(lines), info


def _run(decoded, model: str, backend: str, tile: int, outscale: float, report):
    """The model at its scale, or (outscale set) the family chained and resized to any scale."""
    from serve import upscale
    from serve.resize_plan import upscale_to

    lim = limits()
    kwargs = dict(tile=tile, max_input_pixels=lim.sr_input_pixels, max_output_pixels=lim.sr_output_pixels,
                  progress=report)
    if outscale and outscale != get_spec(model).scale:
        return upscale_to(decoded, model, backend, outscale=outscale, **kwargs)
    return upscale(decoded, model, backend, **kwargs)


def _compare(sr_rgb: np.ndarray, lr_rgb: np.ndarray, hr: np.ndarray, scale: int, info: dict) -> str:
    """PSNR/SSIM/GMSD/detail of the model and of bicubic against the original (stored in info['metrics'])."""
    bic_rgb = bicubic_resize(lr_rgb, hr.shape[:2])
    m = info["metrics"] = {}
    for key, (metric, digits) in COMPARE_METRICS.items():
        m[key] = round(metric(sr_rgb, hr, crop=scale), digits)
        m["bicubic_" + key] = round(metric(bic_rgb, hr, crop=scale), digits)
    return (f"**Against the original** (Y channel, {scale} px border cropped): PSNR {m['psnr_y']:.2f} dB, "
            f"SSIM {m['ssim_y']:.4f}, GMSD {m['gmsd_y']:.4f} (lower is better), detail "
            f"{m['detail_ratio_y']:.2f} (1 = the original's) — bicubic: {m['bicubic_psnr_y']:.2f} dB, "
            f"{m['bicubic_ssim_y']:.4f}, {m['bicubic_gmsd_y']:.4f}, {m['bicubic_detail_ratio_y']:.2f}")


def build() -> None:
    families = sr_families()
    lim = limits()
    if not families:
        gr.Markdown("**Not available yet**: no super-resolution model has weights.")
        return
    first = next(iter(families))
    gr.Markdown(f"Upscale a photo with a trained network: FlashSR (default, fastest and best PSNR) or a model "
                f"of the seed lineage (SRResNet/SRGAN, Swift-SRGAN, ESRCNN, CNN and VAE up-converters; the "
                f"GAN models trade PSNR for sharper texture). Inputs up to {lim.sr_input_pixels / 1e6:.0f} MP "
                f"(outputs up to {lim.sr_output_pixels / 1e6:.0f} MP) on this {'GPU' if lim.gpu else 'CPU'} machine.")
    with gr.Row():
        with gr.Column():
            image = image_upload("Input image", height=320, elem_id="sr-input")
            with gr.Row():
                model = gr.Dropdown(list(families), value=first, label="Model", elem_id="sr-model")
                # string values: Gradio's API/MCP schema types every Radio as a string
                scale = gr.Radio(_scale_choices(families[first]), value=str(families[first][-1]), label="Scale",
                                 elem_id="sr-scale")
            with gr.Row():
                tile = gr.Slider(0, MAX_TILE, value=DEFAULT_TILE, step=MIN_TILE, label="Tile size (0 = whole image)")
                backend = gr.Dropdown(backend_choices(), value="auto", label="Backend", elem_id="sr-backend")
            compare = gr.Checkbox(False, label="Downscale first and compare with the original (PSNR/SSIM)")
            with gr.Accordion("Output size and format", open=False):
                with gr.Row():
                    outscale = gr.Number(0, minimum=0, maximum=16, label="Output scale (0 = the model's; any "
                                         "up to 16, e.g. 1.5, 3, 8)", elem_id="sr-outscale")
                    out_format = gr.Dropdown(list(FORMATS), value="png", label="Download format")
                    quality = gr.Slider(1, 100, value=DEFAULT_QUALITY, step=1, label="Quality (JPEG / WebP)")
            with gr.Row():
                run = gr.Button("Upscale", variant="primary", elem_id="sr-run")
                stop = stop_button()
        with gr.Column():
            slider = gr.ImageSlider(label="Before (bicubic) / after (model)", type="filepath", interactive=False,
                                    elem_id="sr-output")
            download = gr.File(label="Download the result", elem_id="sr-download")
            summary = gr.Markdown(label="Summary", elem_id="sr-summary")
            with gr.Accordion("Run details", open=False):
                details = gr.JSON(label="Run details")
    examples = [[p, first, str(families[first][-1]), DEFAULT_TILE, "auto", cmp] for name, cmp in
                (("sr_title_lr.png", False), ("sr_car_lr.png", False), ("sr_tents_lr.png", False),
                 ("hr_frame_crop.png", True)) if (p := example_path(name))]
    if examples:
        gr.Examples(examples, [image, model, scale, tile, backend, compare], cache_examples=False,
                    label="Examples (the last one compares against its original)")
    model.change(lambda m: gr.Radio(choices=_scale_choices(families.get(m, [])),
                                    value=str((families.get(m) or [""])[-1])),
                 model, scale, api_visibility="private", queue=False)
    event = run.click(upscale_image, [image, model, scale, tile, backend, compare, out_format, quality, outscale],
                      [slider, download, summary, details], api_name="upscale", concurrency_id="compute",
                      preprocess=False)
    cancel_on(stop, event)
    sr_batch.build(model, scale, tile, backend, out_format, quality, outscale)
