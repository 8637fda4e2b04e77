"""Robust image decoding into the project's one convention.

Every image that enters the project (training data, benchmark sets, uploads) goes through
`read_image`, so that corrupt, truncated, 16-bit, palette, CMYK, grey and alpha files are all
handled in one place and a failure names the file and the reason.

Convention: float32 RGB in [0, 1], HxWx3 for arrays, NCHW for tensors; alpha kept separately.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

# A truncated file must fail loudly, not decode as half-grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

DEFAULT_MAX_PIXELS = 64_000_000
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


class ImageLoadError(ValueError):
    """An input image could not be used; the message names the file and the cause."""


@dataclass
class DecodedImage:
    rgb: np.ndarray  # float32 HxWx3 in [0, 1]
    alpha: Optional[np.ndarray]  # float32 HxW in [0, 1], or None
    was_grey: bool
    bit_depth: int  # 8 or 16
    name: str = ""

    @property
    def height(self) -> int:
        return self.rgb.shape[0]

    @property
    def width(self) -> int:
        return self.rgb.shape[1]


Source = Union[str, os.PathLike, bytes, Image.Image]


def _describe(source: Source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, Image.Image):
        return "<image>"
    return "<uploaded bytes>"


def _open(source: Source) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageLoadError(f"{path}: file not found")
        if path.is_dir():
            raise ImageLoadError(f"{path}: is a folder, not an image")
        if path.stat().st_size == 0:
            raise ImageLoadError(f"{path}: file is empty (0 bytes)")
        return Image.open(path)
    if len(source) == 0:
        raise ImageLoadError("<uploaded bytes>: file is empty (0 bytes)")
    return Image.open(io.BytesIO(source))


def _sixteen_bit_rgb(source: Source) -> Optional[np.ndarray]:
    """PIL cannot hold 48-bit RGB; OpenCV can. Returns HxWx3 float in [0,1] or None."""
    if not isinstance(source, (str, os.PathLike)):
        return None
    import cv2

    arr = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3:
        return None
    arr = arr[..., :3][..., ::-1]  # BGR -> RGB, alpha dropped
    return np.ascontiguousarray(arr, dtype=np.float32) / 65535.0


def read_image(source: Source, *, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = 1) -> DecodedImage:
    """Decode any common image file into float32 RGB [0,1] plus optional alpha.

    Raises ImageLoadError naming the file for: missing/empty/non-image/truncated files, images
    over `max_pixels` (checked from the header before decoding, so bombs never allocate), and
    images with a side under `min_side`. Animated files use their first frame.
    """
    name = _describe(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = _open(source)
            width, height = img.size
            if width * height > max_pixels:
                raise ImageLoadError(
                    f"{name}: {width}x{height} is {width * height / 1e6:.1f} MP, over the limit of "
                    f"{max_pixels / 1e6:.1f} MP"
                )
            if min(width, height) < min_side:
                raise ImageLoadError(f"{name}: {width}x{height} is too small (needs at least {min_side} px a side)")
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            img.load()
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name}: not an image file (or a format that cannot be read)") from None
    except Image.DecompressionBombError:
        raise ImageLoadError(f"{name}: image too large (over the decompression-bomb limit of {Image.MAX_IMAGE_PIXELS * 2 / 1e6:.0f} MP)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"{name}: corrupt or truncated image ({exc})") from None

    mode = img.mode
    alpha = None
    bit_depth = 8
    was_grey = mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img).astype(np.float32)
        bit_depth = 16
        scale = 65535.0 if arr.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
        grey = np.clip(arr / scale, 0, 1)
        rgb = np.repeat(grey[..., None], 3, axis=2)
    elif mode == "F":
        grey = np.clip(np.asarray(img, dtype=np.float32), 0, 1)
        rgb = np.repeat(grey[..., None], 3, axis=2)
    else:
        if mode in ("RGBA", "LA", "PA"):
            alpha = np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0
        rgb8 = img.convert("RGB")  # handles L, 1, CMYK, YCbCr, LAB, RGBA...
        rgb = np.asarray(rgb8, dtype=np.float32) / 255.0
        wide = _sixteen_bit_rgb(source) if mode in ("RGB", "RGBA") else None
        if wide is not None and wide.shape == rgb.shape:
            rgb, bit_depth = wide, 16
    if alpha is not None and float(alpha.min()) >= 1.0:
        alpha = None  # fully opaque: nothing to keep
    return DecodedImage(np.ascontiguousarray(rgb, dtype=np.float32), alpha, was_grey, bit_depth, name)


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """[0,1] float -> uint8 with rounding (the quantisation every saved image goes through)."""
    return np.clip(np.rint(np.asarray(arr, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def hwc_to_nchw(arr: np.ndarray):
    """HxWxC float array -> 1xCxHxW torch tensor (the model convention)."""
    import torch

    if arr.ndim == 2:
        arr = arr[..., None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)).unsqueeze(0)


def nchw_to_hwc(tensor) -> np.ndarray:
    """1xCxHxW tensor -> HxWxC float32 array."""
    return tensor.detach().float().cpu().numpy()[0].transpose(1, 2, 0)


def list_images(folder: Union[str, os.PathLike]) -> list:
    """Sorted image files under `folder` (recursive)."""
    root = Path(folder)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
