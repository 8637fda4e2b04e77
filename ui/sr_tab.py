"""Super-resolution tab: upload -> model/scale/tile/backend -> before/after slider, download, metrics."""
from __future__ import annotations

from typing import List

import gradio as gr
import numpy as np

from common.image_write import EXTENSIONS, FORMATS
from common.metrics import detail_ratio_y, gmsd_y, psnr_y, ssim_y
from common.resize import bicubic_downscale, bicubic_resize, mod_crop
from models import REGISTRY
from serve import save_image

from . import sr_batch
from .cancel import cancel_on, start_job, stop_button
from .common import (
    backend_choices,
    checked_backend,
    checked_precision,
    describe_backend,
    example_path,
    image_upload,
    limits,
    load_image,
    precision_select,
    progress_callback,
    save_png,
    save_resized_png,
    user_errors,
    workdir,
)
from .inputs import RefusedInput, flag, one_of, real_number, whole_number
from .sr_options import (
    DEFAULT_QUALITY,
    DEFAULT_TILE,
    LOSSY,
    MAX_TILE,
    MIN_TILE,
    check_tile,
    family_label,
    resolve_family,
    run_sr,
    sr_families,
    takes_strength,
)

# Compare mode: metric(sr, hr, crop) and the digits shown, for the model and for bicubic.
COMPARE_METRICS = {"psnr_y": (psnr_y, 3), "ssim_y": (ssim_y, 4), "gmsd_y": (gmsd_y, 4),
                   "detail_ratio_y": (detail_ratio_y, 3)}


def _scale_choices(scales: List[int]) -> List[tuple]:
    return [(f"×{s}", str(s)) for s in scales]


@user_errors
def upscale_image(image, model: str, scale: int, tile: int = DEFAULT_TILE, backend: str = "auto",
                  compare: bool = False, out_format: str = "png", quality: int = DEFAULT_QUALITY,
                  outscale: float = 0, precision: str = "auto", strength: float = 0.5, progress=gr.Progress(),
                  request: gr.Request = None):
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
        precision: "auto" (fastest whose measured loss is within 0.05 dB, default), "exact fp32", "fast bf16"
            (OpenVINO, where the CPU has bf16) or "fastest int8" (SR only; needs `python -m export int8`).
        strength: denoise strength for the real-photo model ("flashsr_real"): 0 keeps all texture, 1 cleans
            noise and JPEG artefacts hard; default 0.5. Other models ignore it (it is still checked).

    Returns:
        (bicubic, upscaled) image pair, the downloadable result, a summary and a dict of run details.
    """
    spec = resolve_family(model, scale)
    tile, backend, compare = check_tile(tile), checked_backend(backend), flag(compare, "compare")
    out_format = one_of(out_format, "out_format", FORMATS, default="png")
    quality = whole_number(quality, "quality", 1, 100)
    outscale = real_number(outscale, "outscale", 0, 16)
    precision = checked_precision(precision)
    strength = real_number(strength, "strength", 0, 1)
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
        result = run_sr(decoded, spec.name, backend, tile, outscale, progress_callback(progress, "upscaling", job),
                        precision, strength)
    out = workdir("sr")
    stem = decoded.name.rsplit(".", 1)[0][:60] or "image"
    after = result.image
    ran = REGISTRY.get(result.info.get("model"), spec)  # outscale may run the family's other scale
    after_png = save_png(after, out / f"{stem}_{ran.name}.png")
    before_png = save_resized_png(np.concatenate([decoded.rgb, decoded.alpha[..., None]], axis=2)
                                  if decoded.alpha is not None else decoded.rgb, after.shape[:2],
                                  out / f"{stem}_bicubic.png")
    download = str(save_image(result, out / f"{stem}_{ran.name}_out{EXTENSIONS[out_format]}",
                              format=out_format, quality=quality if out_format in LOSSY else None,
                              exif=decoded.exif))
    info = dict(result.info)
    info["download_bits"] = info.get("saved", {}).get("bit_depth", result.bit_depth)
    lines = [f"**{info.get('run') or spec.name}**: {info['input_size'][0]}×{info['input_size'][1]} → "
             f"{info['output_size'][0]}×{info['output_size'][1]} in {info['seconds']:.2f} s — {ran.description}",
             describe_backend(info, backend)]
    if compare:
        lines.append(_compare(after[..., :3], decoded.rgb, hr, s, info))
    notes = list(decoded.notes) + list(info.get("saved", {}).get("notes", []))
    if decoded.was_grey:
        notes.append("grey input: upscaled as RGB, returned grey")
    if decoded.alpha is not None:
        notes.append("alpha channel resized bicubically beside the model")
    if info["download_bits"] == 16:
        notes.append("16-bit source: the download keeps 16 bits per channel")
    if notes:
        info["notes"] = notes
        lines.append("Notes: " + "; ".join(notes) + ".")
    return (before_png, after_png), download, "<br>".join(lines), info


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
    gr.Markdown(f"Upscale a photo with a trained network. **Photo** (default when trained) is FlashSR trained on "
                f"real-world degradations — camera noise, JPEG, blur — with a denoise-strength slider; the clean / "
                f"benchmark models are FlashSR (fastest, best PSNR on clean downscales) and the seed lineage "
                f"(SRResNet/SRGAN, Swift-SRGAN, ESRCNN, CNN and VAE up-converters; the "
                f"GAN models trade PSNR for sharper texture). Inputs up to {lim.sr_input_pixels / 1e6:.0f} MP "
                f"(outputs up to {lim.sr_output_pixels / 1e6:.0f} MP) on this {'GPU' if lim.gpu else 'CPU'} machine.")
    with gr.Row():
        with gr.Column():
            image = image_upload("Input image", height=320, elem_id="sr-input")
            with gr.Row():
                model = gr.Dropdown([(family_label(f), f) for f in families], value=first, label="Model",
                                    elem_id="sr-model")
                # string values: Gradio's API/MCP schema types every Radio as a string
                scale = gr.Radio(_scale_choices(families[first]), value=str(families[first][-1]), label="Scale",
                                 elem_id="sr-scale")
            with gr.Row():
                tile = gr.Slider(0, MAX_TILE, value=DEFAULT_TILE, step=MIN_TILE, label="Tile size (0 = whole image)")
                backend = gr.Dropdown(backend_choices(), value="auto", label="Backend", elem_id="sr-backend")
                precision = precision_select(elem_id="sr-precision")
            strength = gr.Slider(0, 1, value=0.5, step=0.05, label="Denoise strength (0 = keep texture, 1 = clean "
                                 "hard; Photo model only)", interactive=takes_strength(first), elem_id="sr-strength")
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
    model.change(lambda m: (gr.Radio(choices=_scale_choices(families.get(m, [])),
                                     value=str((families.get(m) or [""])[-1])),
                            gr.Slider(interactive=takes_strength(m))),
                 model, [scale, strength], api_visibility="private", queue=False)
    event = run.click(upscale_image, [image, model, scale, tile, backend, compare, out_format, quality, outscale,
                                        precision, strength],
                      [slider, download, summary, details], api_name="upscale", concurrency_id="compute",
                      preprocess=False)
    cancel_on(stop, event)
    sr_batch.build(model, scale, tile, backend, out_format, quality, outscale, precision, strength)
