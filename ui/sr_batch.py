"""Many photos at once in the SR tab: several files or a zip in, a zip of results out (/upscale_batch).

Uploads are checked like every file argument (ui.inputs.uploaded_file). A zip is unpacked here with
limits, never with extractall: members with absolute or `..` names are skipped (path traversal),
and members whose declared or actual size passes the limits (decompression bombs) are refused. The
files then go through serve.batch.run_batch, the driver the CLIs use: one failed file is reported
and the rest go on; a progress bar counts files; the Stop button ends the batch between files.
"""
from __future__ import annotations

import shutil
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, List, Tuple

import gradio as gr

from common.image_write import EXTENSIONS, FORMATS
from common.images import IMAGE_EXTENSIONS, read_image

from .cancel import cancel_on, start_job, stop_button
from .common import checked_backend, checked_precision, limits, user_errors, workdir
from .inputs import RefusedInput, one_of, real_number, uploaded_file, whole_number
from .sr_options import LOSSY, check_tile, resolve_family, run_sr

MAX_FILES = 50  # per batch on the public Space: about a minute per 1 MP photo on 2 CPU cores
MAX_MEMBER_BYTES = 64 * 1024 * 1024  # one unpacked zip member
MAX_UNPACKED_BYTES = 512 * 1024 * 1024  # the whole unpacked zip
MAX_RATIO = 200  # compressed -> unpacked; image files compress far less than this


def _unpack_zip(path: str, name: str, folder: Path, notes: List[str]) -> List[Path]:
    """The image members of a zip, written under `folder`; unsafe members skipped with a note."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise RefusedInput(f"{name}: not a readable zip file.") from None
    found, total = [], 0
    with archive:
        for member in archive.infolist():
            if member.is_dir() or not member.filename.lower().endswith(IMAGE_EXTENSIONS):
                continue
            parts = PurePosixPath(member.filename.replace("\\", "/")).parts
            if not parts or member.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
                notes.append(f"{name}: skipped {member.filename!r} (an unsafe path)")
                continue
            if member.file_size > MAX_MEMBER_BYTES or member.file_size > MAX_RATIO * max(member.compress_size, 1):
                raise RefusedInput(f"{name}: {member.filename} unpacks to {member.file_size / 1e6:.1f} MB from "
                                   f"{member.compress_size / 1e6:.2f} MB: refused as a decompression bomb.")
            total += member.file_size
            if total > MAX_UNPACKED_BYTES:
                raise RefusedInput(f"{name}: unpacks to over {MAX_UNPACKED_BYTES / 1e6:.0f} MB; send fewer files.")
            target = folder.joinpath(Path(name).stem, *parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(_Capped(src, MAX_MEMBER_BYTES), dst)
                copied = dst.tell()
            if copied > member.file_size:  # a header that lied about the size
                raise RefusedInput(f"{name}: {member.filename} is larger than its zip entry says.")
            found.append(target)
    return found


class _Capped:
    """A reader that stops with an error after `limit` bytes (a zip entry whose header lies)."""

    def __init__(self, raw, limit: int):
        self.raw, self.left = raw, limit

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(min(size if size > 0 else 1 << 20, self.left + 1))
        self.left -= len(data)
        if self.left < 0:
            raise RefusedInput("a zip member is larger than the limit of "
                               f"{MAX_MEMBER_BYTES / 1e6:.0f} MB: refused as a decompression bomb.")
        return data


def gather_inputs(files: Any, folder: Path) -> Tuple[List[Path], List[str]]:
    """Uploaded images and zips -> image paths under `folder` (unique names), plus notes."""
    if isinstance(files, dict) or isinstance(files, str):
        files = [files]
    if not files:
        raise RefusedInput("Please upload at least one image (or a zip of images).")
    paths, notes = [], []
    folder.mkdir(parents=True, exist_ok=True)
    for payload in files:
        source, name = uploaded_file(payload, "file")
        if isinstance(source, bytes):
            raise RefusedInput("Batch files must be uploaded as files.")
        if name.lower().endswith(".zip"):
            paths += _unpack_zip(source, name, folder, notes)
        else:
            target = folder / name
            index = 1
            while target.exists():
                target = folder / f"{Path(name).stem}_{index}{Path(name).suffix}"
                index += 1
            shutil.copyfile(source, target)
            paths.append(target)
        if len(paths) > MAX_FILES:
            raise RefusedInput(f"Over {MAX_FILES} images in one batch; split it.")
    if not paths:
        raise RefusedInput("No image files found in the upload" + (f" ({'; '.join(notes)})" if notes else "") + ".")
    return paths, notes


@user_errors
def upscale_batch(files, model: str, scale: int, tile: int = 256, backend: str = "auto", out_format: str = "png",
                  quality: int = 95, outscale: float = 0, precision: str = "auto", strength: float = 0.5,
                  progress=gr.Progress(), request: gr.Request = None):
    """Upscale many photos at once; returns a zip of the results and a summary of what failed and why.

    Args:
        files: image files and/or zip files of images (at most 50 images).
        model: model family, e.g. "flashsr", or a full name like "flashsr_x4".
        scale: 2 or 4.
        tile: tile side in input pixels, 0 for whole images, else at least 128.
        backend: "auto", "onnx", "torch" or a specific kind such as "onnx-cpu".
        out_format: "png", "jpeg", "webp", "webp-lossless" or "tiff".
        quality: 1-100 for JPEG/WebP.
        outscale: any output scale up to 16; 0 keeps the model's.
        precision: "auto" (fastest whose measured loss is within 0.05 dB, default), "exact fp32", "fast bf16"
            (OpenVINO, where the CPU has bf16) or "fastest int8" (SR only; needs `python -m export int8`).
        strength: denoise strength 0-1 for the real-photo model (default 0.5); other models ignore it.

    Returns:
        A zip of the results, a summary and one row per file (name, status, message, seconds).
    """
    from serve import save_image
    from serve.batch import run_batch


    spec = resolve_family(model, scale)
    tile, backend = check_tile(tile), checked_backend(backend)
    out_format = one_of(out_format, "out_format", FORMATS, default="png")
    quality = whole_number(quality, "quality", 1, 100)
    outscale = real_number(outscale, "outscale", 0, 16)
    precision = checked_precision(precision)
    strength = real_number(strength, "strength", 0, 1)
    work = workdir("batch")
    inputs, notes = gather_inputs(files, work / "in")
    lim = limits()

    def process(source: Path, output: Path) -> dict:
        decoded = read_image(source, max_pixels=lim.sr_input_pixels, min_side=8)
        result = run_sr(decoded, spec.name, backend, tile, outscale, None, precision, strength)
        save_image(result, output, format=out_format, quality=quality if out_format in LOSSY else None,
                   exif=decoded.exif)
        return {"output_size": result.info["output_size"], "notes": decoded.notes}

    def report(done: int, total: int, name: str) -> None:
        if progress is not None:
            progress((done, total), desc=f"{name}", unit="files")

    with start_job(request) as job:
        batch = run_batch(inputs, work / "out", process, root=work / "in", extension=EXTENSIONS[out_format],
                          cancel=job.cancelled.is_set, progress=report, desc="images")
    done = [r for r in batch.results if r.status == "done"]
    if not done:
        raise RefusedInput("No file could be upscaled:\n" + batch.summary())
    archive = work / f"upscaled_{spec.name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:  # images are compressed already
        for r in done:
            zf.write(r.output, r.output.relative_to(work / "out").as_posix())
    rows = [{"file": r.name, "status": r.status, "message": r.message, "seconds": round(r.seconds, 2)}
            for r in batch.results]
    text = batch.summary().replace("\n", "<br>") + "".join(f"<br>note: {n}" for n in notes)
    return str(archive), f"**{spec.name}**, {out_format}: {text}", rows


def build(model, scale, tile, backend, out_format, quality, outscale, precision, strength) -> None:
    """The batch section under the single-image controls; shares their model and output settings."""
    with gr.Accordion(f"Many photos at once (up to {MAX_FILES}, or a zip)", open=False):
        with gr.Row():
            files = gr.File(label="Images or zip files", file_count="multiple",
                            file_types=["image", ".zip"], elem_id="sr-batch-files")
            with gr.Column():
                with gr.Row():
                    run = gr.Button("Upscale all", variant="primary", elem_id="sr-batch-run")
                    stop = stop_button()
                archive = gr.File(label="Results (zip)", elem_id="sr-batch-zip")
                summary = gr.Markdown()
        rows = gr.JSON(label="Per file", visible=True)
    event = run.click(upscale_batch, [files, model, scale, tile, backend, out_format, quality, outscale, precision,
                                              strength],
                      [archive, summary, rows], api_name="upscale_batch", concurrency_id="compute",
                      preprocess=False)
    cancel_on(stop, event)
