"""Write results as PNG, JPEG, WebP (lossy or lossless) or TIFF, and say what that did to them.

    report = write_image(rgb_float, "out.jpg", quality=90, bit_depth=16, exif=decoded.exif)
    report["notes"]  # ['reduced to 8 bits per channel: JPEG cannot hold 16-bit images', ...]

Every file is tagged sRGB (the models' colour space) and carries the input's EXIF minus its
orientation where the format allows. 16-bit stays 16-bit in PNG and TIFF; JPEG and WebP are 8-bit
only, so the report says the image was reduced. Alpha is kept in PNG, WebP and TIFF and flattened
onto white in JPEG. The returned report is what the UI/API shows (plain JSON types).
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Dict, List, Optional, Union

import numpy as np
from PIL import Image

from .image_meta import exif_for_output, srgb_icc_bytes

FORMATS = ("png", "jpeg", "webp", "webp-lossless", "tiff")
EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "webp-lossless": ".webp", "tiff": ".tif"}
_ALIASES = {"jpg": "jpeg", "tif": "tiff", "webp_lossless": "webp-lossless", "webplossless": "webp-lossless"}
_SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp", ".tif": "tiff", ".tiff": "tiff"}
DEFAULT_QUALITY = {"jpeg": 95, "webp": 90, "webp-lossless": 80}  # webp-lossless: effort, not fidelity
MAX_SIDE = {"jpeg": 65535, "webp": 16383, "webp-lossless": 16383}
_LABEL = {"png": "PNG", "jpeg": "JPEG", "webp": "WebP", "webp-lossless": "lossless WebP", "tiff": "TIFF"}
Target = Union[str, os.PathLike, BinaryIO]


def normalize_format(fmt: str) -> str:
    """'PNG', 'jpg', 'webp_lossless', ... -> one of FORMATS; ValueError naming the choices otherwise."""
    key = str(fmt).strip().lower().lstrip(".")
    key = _ALIASES.get(key, key)
    if key not in FORMATS:
        raise ValueError(f"unknown output format '{fmt}'; choose one of: {', '.join(FORMATS)}")
    return key


def format_for_path(path: Union[str, os.PathLike]) -> Optional[str]:
    """The format a file name asks for (.jpg -> 'jpeg'), or None for an unknown extension."""
    return _SUFFIXES.get(Path(path).suffix.lower())


def check_quality(quality: Any) -> Optional[int]:
    """None, or an int 1..100; ValueError with the reason otherwise."""
    if quality is None:
        return None
    if isinstance(quality, bool) or not isinstance(quality, (int, float, np.integer, np.floating)) \
            or not float(quality).is_integer():
        raise ValueError(f"quality must be a whole number from 1 to 100, got {quality!r}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be from 1 to 100, got {int(quality)}")
    return int(quality)


def _as_float(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or arr.size == 0:
        raise ValueError(f"image must be HxW or HxWxC with C in 1..4, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    return np.clip(np.nan_to_num(arr.astype(np.float32)), 0.0, 1.0)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_chunks(png: bytes, icc: Optional[bytes], exif: Optional[bytes]) -> bytes:
    """Insert iCCP and eXIf chunks right after IHDR (OpenCV's 16-bit PNG writer has no metadata options)."""
    end_of_ihdr = 8 + 12 + struct.unpack_from(">I", png, 8)[0]
    extra = b""
    if icc:
        extra += _png_chunk(b"iCCP", b"sRGB\x00\x00" + zlib.compress(icc))
    if exif:
        extra += _png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    return png[:end_of_ihdr] + extra + png[end_of_ihdr:]


def _encode_16bit(arr16: np.ndarray, fmt: str, icc: Optional[bytes], exif: Optional[bytes],
                  notes: List[str]) -> bytes:
    if fmt == "png":
        import cv2

        channels = arr16.shape[2]
        if channels == 2:  # PNG grey+alpha: OpenCV writes 1, 3 or 4 channels
            arr16 = np.concatenate([np.repeat(arr16[..., :1], 3, axis=2), arr16[..., 1:]], axis=2)
        if arr16.shape[2] >= 3:
            arr16 = arr16[..., [2, 1, 0, 3][: arr16.shape[2]]]  # RGB(A) -> BGR(A)
        ok, encoded = cv2.imencode(".png", np.ascontiguousarray(arr16))
        if not ok:
            raise OSError("OpenCV could not encode the 16-bit PNG")
        return png_with_chunks(encoded.tobytes(), icc, exif)
    import tifffile

    buffer = io.BytesIO()
    channels = arr16.shape[2]
    data = arr16[..., 0] if channels == 1 else arr16
    tifffile.imwrite(buffer, data, photometric="minisblack" if channels <= 2 else "rgb",
                     extrasamples=[2] if channels in (2, 4) else None, compression="zlib",
                     iccprofile=icc if channels >= 3 else None)
    if exif:
        notes.append("EXIF not written: the 16-bit TIFF writer cannot embed it (use PNG to keep EXIF at 16 bits)")
    return buffer.getvalue()


def _tiff_exif(exif_bytes: bytes, notes: List[str]) -> Image.Exif:
    """TIFF holds EXIF tags in its own IFD0; Pillow cannot write the camera sub-IFDs there, so they are dropped."""
    exif = Image.Exif()
    exif.load(exif_bytes)
    dropped = [tag for tag in (0x8769, 0x8825, 0xA005) if exif.pop(tag, None) is not None]
    if dropped:
        notes.append("TIFF: the camera EXIF details (exposure, GPS) were left out; the main tags were kept")
    return exif


def write_image(image: np.ndarray, target: Target, fmt: Optional[str] = None, *, quality: Optional[int] = None,
                bit_depth: int = 8, exif: Optional[bytes] = None, icc: bool = True,
                background: float = 1.0) -> Dict[str, Any]:
    """Write `image` (HxW[xC], C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA; float [0,1], uint8 or uint16).

    fmt: one of FORMATS (default: from the file name). quality 1..100: JPEG/WebP fidelity, lossless
    WebP effort; ignored (noted) for PNG/TIFF. bit_depth 16 writes 16-bit PNG/TIFF and is reduced to
    8 (noted) for JPEG/WebP. exif: the input's EXIF bytes (DecodedImage.exif). Returns the report:
    {format, extension, bit_depth, channels, alpha, icc, exif, quality, notes, bytes, path}.
    """
    is_path = isinstance(target, (str, os.PathLike))
    from_name = format_for_path(target) if is_path else None
    fmt = normalize_format(fmt) if fmt is not None else from_name
    if fmt is None:
        raise ValueError(f"cannot tell the format from '{Path(target).name if is_path else target}'; "
                         f"pass one of: {', '.join(FORMATS)}")
    if from_name is not None and from_name != fmt and not (fmt == "webp-lossless" and from_name == "webp"):
        raise ValueError(f"format {fmt} does not match the file name '{Path(target).name}' ({from_name})")
    quality = check_quality(quality)
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    arr = _as_float(image)
    height, width, channels = arr.shape
    notes: List[str] = []
    label = _LABEL[fmt]
    if fmt in MAX_SIDE and max(height, width) > MAX_SIDE[fmt]:
        raise ValueError(f"{label} cannot hold an image of {width}x{height} (at most {MAX_SIDE[fmt]} px a side); "
                         "use PNG or TIFF")
    alpha = "kept" if channels in (2, 4) else None
    if alpha and fmt == "jpeg":
        colour, a = arr[..., :-1], arr[..., -1:]
        arr = colour * a + background * (1.0 - a)
        channels -= 1
        alpha = "flattened onto white" if background == 1.0 else f"flattened onto {background:g} grey"
        notes.append(f"transparency {alpha}: JPEG has no alpha channel")
    if fmt.startswith("webp") and channels <= 2:  # WebP has no grey mode
        arr = np.concatenate([np.repeat(arr[..., :1], 3, axis=2), arr[..., 1:]], axis=2)
        channels = arr.shape[2]
    if bit_depth == 16 and fmt not in ("png", "tiff"):
        notes.append(f"reduced to 8 bits per channel: {label} cannot hold 16-bit images (use PNG or TIFF)")
        bit_depth = 8
    if quality is not None and fmt in ("png", "tiff"):
        notes.append(f"quality ignored: {label} is lossless here")
    elif quality is None and fmt in DEFAULT_QUALITY:
        quality = DEFAULT_QUALITY[fmt]
    icc_bytes = srgb_icc_bytes() if icc else None
    if icc and channels <= 2:
        icc_bytes = None  # an RGB profile in a grey file is invalid; grey is written as stored
    exif_bytes = exif_for_output(exif, (width, height)) if exif else None
    if exif and exif_bytes is None:
        notes.append("the input's EXIF could not be re-written and was left out")

    if bit_depth == 16:
        data = _encode_16bit(np.clip(np.rint(arr * 65535.0), 0, 65535).astype(np.uint16), fmt, icc_bytes,
                             exif_bytes, notes)
        if fmt == "tiff":
            exif_bytes = None
    else:
        arr8 = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
        pil = Image.fromarray(arr8[..., 0] if channels == 1 else arr8, mode)
        options: Dict[str, Any] = {}
        if icc_bytes:
            options["icc_profile"] = icc_bytes
        if exif_bytes:
            options["exif"] = exif_bytes
        if fmt == "png":
            options.update(compress_level=6)
        elif fmt == "jpeg":
            options.update(quality=quality, optimize=True, subsampling=0 if quality >= 90 else 2)
        elif fmt == "webp":
            options.update(quality=quality, method=4)
        elif fmt == "webp-lossless":
            options.update(lossless=True, quality=quality, method=4, exact=True)  # exact: keep RGB under alpha 0
        else:
            options.update(compression="tiff_deflate")
            if exif_bytes:
                options["exif"] = _tiff_exif(exif_bytes, notes)
        buffer = io.BytesIO()
        try:
            pil.save(buffer, format={"jpeg": "JPEG", "png": "PNG", "tiff": "TIFF"}.get(fmt, "WEBP"), **options)
        except (RuntimeError, OSError, ValueError):
            if "exif" not in options:
                raise
            options.pop("exif")  # EXIF the encoder rejects must not cost the image
            notes.append(f"the input's EXIF could not be written into the {label} file and was left out")
            exif_bytes = None
            buffer = io.BytesIO()
            pil.save(buffer, format={"jpeg": "JPEG", "png": "PNG", "tiff": "TIFF"}.get(fmt, "WEBP"), **options)
        data = buffer.getvalue()
    if is_path:
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        target.write(data)
    return {"format": fmt, "extension": EXTENSIONS[fmt], "bit_depth": bit_depth,
            "channels": {1: "grey", 2: "grey+alpha", 3: "RGB", 4: "RGBA"}[channels], "alpha": alpha,
            "icc": "sRGB" if icc_bytes else None, "exif": bool(exif_bytes), "quality": quality if fmt in
            DEFAULT_QUALITY else None, "notes": notes, "bytes": len(data), "path": str(target) if is_path else None}
