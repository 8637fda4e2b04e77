"""Bicubic resizing with PIL, the accepted stand-in for MATLAB imresize (antialiased when shrinking).

Used for making LR inputs (train and evaluate) and for the bicubic baseline, so both sides of
every comparison go through the same code.
"""
from __future__ import annotations

import numpy as np
from PIL import Image


def mod_crop(img: np.ndarray, multiple: int) -> np.ndarray:
    """Crop bottom/right so height and width are multiples of `multiple`."""
    h, w = img.shape[:2]
    return img[: h - h % multiple, : w - w % multiple]


def bicubic_resize(img: np.ndarray, size_hw: tuple) -> np.ndarray:
    """HxWxC (or HxW) float [0,1] -> resized float [0,1], through 8-bit like a saved image.

    8-bit quantisation is deliberate: benchmark LR images are 8-bit files, so the model must see
    the same rounding at training and test time.
    """
    arr = np.clip(np.rint(np.asarray(img, np.float32) * 255.0), 0, 255).astype(np.uint8)
    squeeze = arr.ndim == 3 and arr.shape[2] == 1
    pil = Image.fromarray(arr[..., 0] if squeeze else arr)
    out = np.asarray(pil.resize((int(size_hw[1]), int(size_hw[0])), Image.BICUBIC), dtype=np.float32) / 255.0
    return out[..., None] if squeeze else out


def bicubic_downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    h, w = hr.shape[:2]
    return bicubic_resize(hr, (h // scale, w // scale))


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    h, w = lr.shape[:2]
    return bicubic_resize(lr, (h * scale, w * scale))
