"""What every tab shares: the upload component, decoding with limits, error mapping, scratch folders.

Errors users can fix (a bad file, an image too large, a model not trained yet) become gr.Error with
a sentence that names the file by its uploaded name, never by the server's temp path. Outputs are
written to per-request folders under Gradio's temp dir (GRADIO_TEMP_DIR); folders older than
WORK_TTL_S are removed whenever a new one is made, so disk use stays bounded on a long-running Space.
"""
from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional

import gradio as gr
import numpy as np
from PIL import Image

from common.images import DecodedImage, ImageLoadError, read_image, to_uint8
from models import REGISTRY, ModelSpec
from serve.memory import release_free_heap
from serve.runtime import release_idle_memory

from .cancel import JobCancelled
from .inputs import EXAMPLES_DIR, RefusedInput, one_of, uploaded_file

log = logging.getLogger("stsr.app")

WORK_TTL_S = 30 * 60
LONG_JOBS = "long"  # concurrency id: video and benchmark jobs take turns in one slot (bounds peak memory)
MIN_SIDE = 8  # smaller images carry too little to upscale, colorize or interpolate
NOT_AVAILABLE = "**Not available yet**: {what}. This part fills in as soon as a {task} model is registered " \
                "with weights."


@dataclass(frozen=True)
class Limits:
    """Request limits, chosen so that one request finishes in reasonable time on the device."""
    sr_input_pixels: int
    sr_output_pixels: int
    video_seconds: float
    video_frames: int
    video_sr_pixels: int  # all input frames' pixels together, for video SR
    bench_pixel_runs: int  # sum over the benchmark's runs of the input pixels
    uncertainty_pixel_passes: int  # K x input pixels of one uncertainty map (larger inputs are centre-cropped)
    gpu: bool


def _gpu_present() -> bool:
    try:
        import torch

        if torch.cuda.is_available():
            return True
    except ImportError:
        pass
    try:
        import onnxruntime as ort

        return bool({"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers()))
    except ImportError:
        return False


@functools.lru_cache(maxsize=1)
def limits() -> Limits:
    if _gpu_present():
        return Limits(16_000_000, 64_000_000, 10.0, 300, 300_000_000, 2_000_000_000, 400_000_000, True)
    # free CPU Space (2 vCPU): ORT CPU does ~0.15 output MP/s with FlashSR x4, so 16 MP out is ~1-2 min
    return Limits(2_000_000, 16_000_000, 10.0, 300, 4_000_000, 20_000_000, 12_000_000, False)


def image_upload(label: str, **kwargs) -> gr.Image:
    """An image input whose events run with preprocess=False: the handler gets the raw payload and
    ui.inputs.uploaded_file checks it (upload folder only) before common.images.read_image decodes it,
    with the pixel limit checked from the header. Stock preprocessing would open any path it is given
    with PIL, before the handler could refuse it."""
    kwargs.setdefault("sources", ["upload", "clipboard"])
    return gr.Image(label=label, type="filepath", image_mode=None, **kwargs)


def uploaded(value: Any, what: str = "image") -> tuple:
    """(path inside the upload folder or pasted bytes, display name); RefusedInput otherwise."""
    return uploaded_file(value, what)


def uploaded_video(value: Any, progress) -> tuple:
    """(path, display name, serve.video_io probe) of an uploaded video, checked against the length, frame
    count and frame size limits before anything is decoded; a clear gr.Error otherwise."""
    from serve.video import probe

    path, name = uploaded(value, "video")
    if isinstance(path, bytes):
        raise gr.Error("The video must be uploaded as a file.")
    lim = limits()
    progress(0, desc="checking the video")
    info = probe(path, max_seconds=lim.video_seconds, max_frames=lim.video_frames, max_frame_pixels=lim.sr_input_pixels)
    return path, name, info


def load_image(value: Any, *, max_pixels: int, min_side: int = MIN_SIDE, what: str = "image") -> DecodedImage:
    """Decode an upload through common.images.read_image; errors name the uploaded file, not the temp path."""
    source, name = uploaded(value, what)
    try:
        decoded = read_image(source, max_pixels=max_pixels, min_side=min_side)
    except ImageLoadError as exc:
        message = str(exc).replace(source, name) if isinstance(source, str) else str(exc)
        raise RefusedInput(message.replace("<uploaded bytes>", name)) from None
    decoded.name = name
    return decoded


def user_errors(fn: Callable) -> Callable:
    """Show expected failures as a gr.Error with their message; log and summarise unexpected ones.

    serve's InputError/ServeError (a RuntimeError/ValueError family) and the checkpoint errors carry
    sentences meant for users. Anything else is a bug: logged with its traceback, shown briefly.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from serve.contract import REQUEST_ERRORS, error_message

        try:
            return fn(*args, **kwargs)
        except JobCancelled as exc:
            log.info("%s stopped from the page", fn.__name__)
            raise gr.Error(str(exc), print_exception=False) from None
        except gr.Error as exc:
            log.info("%s refused: %s", fn.__name__, exc.message)
            exc.print_exception = False  # an answer to the user, not a server fault
            raise
        except REQUEST_ERRORS as exc:
            message = error_message(exc)
            log.info("%s refused: %s", fn.__name__, message)
            raise gr.Error(str(message), print_exception=False) from None
        except MemoryError:
            log.warning("%s ran out of memory", fn.__name__)
            raise gr.Error("Out of memory for this request; try a smaller input.", print_exception=False) from None
        except Exception as exc:  # noqa: BLE001 - the server must keep serving
            log.error("%s failed:\n%s", fn.__name__, traceback.format_exc())
            raise gr.Error(f"Internal error ({type(exc).__name__}); it was logged and the server is still running.",
                           print_exception=False) from None
        finally:
            release_idle_memory()  # runtimes' buffers sized by this request's input (OpenVINO keeps them)
            release_free_heap()  # a request's large arrays are freed now: give their pages back

    return wrapper


def work_root() -> Path:
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio") / "stsr-work"


def workdir(prefix: str) -> Path:
    """A fresh folder for one request's outputs; sweeps folders older than WORK_TTL_S."""
    root = work_root()
    root.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - WORK_TTL_S
    for old in root.iterdir():
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=root))


def save_png(arr: np.ndarray, path: Path, compress_level: int = 1) -> str:
    """float [0,1] HxW(xC) -> 8-bit PNG (fast compression: these are previews and downloads)."""
    img = to_uint8(arr)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    Image.fromarray(img).save(path, compress_level=compress_level)
    return str(path)


def save_resized_png(arr: np.ndarray, size_hw: tuple, path: Path) -> str:
    """float [0,1] HxW(xC) -> PIL-bicubic resized to size_hw -> 8-bit PNG; the same pixels as
    save_png(common.resize.bicubic_resize(...)), without its float copy at the output size (192 MB at 16 MP)."""
    img = to_uint8(arr)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    Image.fromarray(img).resize((int(size_hw[1]), int(size_hw[0])), Image.BICUBIC).save(path, compress_level=1)
    return str(path)


def models_for(task: str, *, trained_only: bool = True) -> List[ModelSpec]:
    return [s for s in REGISTRY.values() if s.task == task and (s.has_weights() or not trained_only)]


def torch_available() -> bool:
    """PyTorch is installed: a lean Space (requirements.txt only) serves the shipped ONNX files without it."""
    from serve.backends import module_available

    return module_available("torch")


def backend_choices() -> List[str]:
    """auto / onnx, plus openvino, torch and trt where installed (the list shown in every tab)."""
    from serve.backends import module_available

    return (["auto", "onnx"] + (["openvino"] if module_available("openvino") else [])
            + (["torch"] if torch_available() else []) + (["trt"] if module_available("tensorrt") else []))


def precision_choices() -> List[str]:
    """The precision dropdown: 'exact fp32' (default), 'fast bf16', 'fastest int8', 'auto' (serve.precision)."""
    from serve.precision import LABELS

    return list(LABELS)


def checked_precision(value: Any) -> str:
    """The precision argument: a label of the dropdown or a plain name (fp32, bf16, int8, auto); None -> auto."""
    from serve.precision import parse_precision

    label = one_of(value, "precision", precision_choices() + ["fp32", "bf16", "int8"], default="auto")
    return parse_precision(label)


def precision_select(**kwargs) -> gr.Dropdown:
    return gr.Dropdown(precision_choices(), value="auto", label="Precision", **kwargs)


def checked_backend(value: Any) -> str:
    """The backend argument: a choice of the tabs' dropdown or one of serve's specific kinds; None -> auto."""
    from serve.runtime import KINDS

    choices = backend_choices() + ["torch"]  # without torch installed, serve says so in a sentence
    return one_of(value, "backend", list(dict.fromkeys(choices + list(KINDS))), default="auto")


def describe_backend(info: dict, requested: str) -> str:
    """'auto → onnx-cpu (CPUExecutionProvider)' plus why faster kinds were skipped."""
    selection = info.get("selection") or ""
    kind = selection.split("using ", 1)[1].split(" ", 1)[0] if "using " in selection else info.get("backend", "?")
    picked = f"{kind} ({info.get('provider', '?')})"
    text = f"**Backend**: {requested} → {picked}" if requested == "auto" else f"**Backend**: {picked}"
    if requested == "auto" and "; skipped " in selection:
        text += f"<br><small>auto skipped: {selection.split('; skipped ', 1)[1]}</small>"
    return text


def example_path(name: str) -> Optional[str]:
    path = EXAMPLES_DIR / name
    return str(path) if path.exists() else None


def progress_callback(progress: Optional[gr.Progress], desc: str, job=None,
                      unit: str = "tiles") -> Optional[Callable[[int, int], None]]:
    """A (done, total) callback for serve's pipelines that drives a gr.Progress bar and, given a
    ui.cancel.Job, stops the loop (JobCancelled) once the tab's Stop button was pressed."""
    if progress is None and job is None:
        return None

    def report(done: int, total: int) -> None:
        if job is not None:
            job.check()
        if progress is not None:
            progress((done, max(total, 1)), desc=desc, unit=unit)

    return report
