"""Robust image decoding into the project's one convention.

Every image that enters the project (training data, benchmark sets, uploads) goes through
`read_image`, so that corrupt, truncated, 16-bit, palette, CMYK, grey and alpha files are all
handled in one place and a failure names the file and the reason.

Convention: float32 RGB in [0, 1], HxWx3 for arrays, NCHW for tensors; alpha kept separately.
Pixels come out upright (EXIF orientation applied) and in sRGB (embedded ICC profiles converted,
common.image_meta); `DecodedImage.notes` says in words what was done, for the user.
"""
from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
from PIL import Image, ImageCms, ImageFile, UnidentifiedImageError

from .image_meta import (
    ORIENTATION_TAG,
    ORIENTATION_WORDS,
    apply_orientation,
    convert_float_to_srgb,
    convert_pil_to_srgb,
    exif_for_output,
    is_srgb,
    load_profile,
    orientation_of,
    parse_exif,
    profile_description,
)

# A truncated file must fail loudly, not decode as half-grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

DEFAULT_MAX_PIXELS = 64_000_000
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


class ImageLoadError(ValueError):
    """An input image could not be used; the message names the file and the cause."""


@dataclass
class DecodedImage:
    rgb: np.ndarray  # float32 HxWx3 in [0, 1], sRGB, upright
    alpha: Optional[np.ndarray]  # float32 HxW in [0, 1], or None
    was_grey: bool
    bit_depth: int  # 8 or 16
    name: str = ""
    notes: List[str] = field(default_factory=list)  # what was done on the way in, in words for the user
    orientation: int = 1  # the EXIF orientation that was undone (1: none)
    icc_profile: Optional[str] = None  # description of the embedded profile converted to sRGB (None: none)
    exif: Optional[bytes] = None  # the input's EXIF minus orientation, to write into outputs (None: none)
    source_format: str = ""  # PIL's format name: PNG, JPEG, WEBP, TIFF, ...
    frames: int = 1  # frames/pages in the file (only the first is decoded)

    @property
    def height(self) -> int:
        return self.rgb.shape[0]

    @property
    def width(self) -> int:
        return self.rgb.shape[1]


Source = Union[str, os.PathLike, bytes, Image.Image]


def format_megapixels(pixels: float, limit: float) -> Tuple[str, str]:
    """('2.001 MP', '2.000 MP'): as many decimals (1..6) as it takes for the two to read differently."""
    for digits in range(1, 7):
        a, b = f"{pixels / 1e6:.{digits}f}", f"{limit / 1e6:.{digits}f}"
        if a != b:
            break
    return f"{a} MP", f"{b} MP"


def _describe(source: Source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, Image.Image):
        return "<image>"
    return "<uploaded bytes>"


def _open(source: Source, name: str) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageLoadError(f"{name}: file not found")
        if path.is_dir():
            raise ImageLoadError(f"{name}: is a folder, not an image")
        if path.stat().st_size == 0:
            raise ImageLoadError(f"{name}: file is empty (0 bytes)")
        try:
            return Image.open(path)
        except (UnidentifiedImageError, Image.DecompressionBombError):
            raise
        except OSError as exc:
            if exc.errno is not None:  # permission denied, I/O error: say so without the OS's path
                raise ImageLoadError(f"{name}: cannot be read ({exc.strerror})") from None
            raise
    if len(source) == 0:
        raise ImageLoadError(f"{name}: file is empty (0 bytes)")
    return Image.open(io.BytesIO(source))


_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
          (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"BM", "BMP"))


def _magic_format(data: bytes) -> Optional[str]:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((fmt for magic, fmt in _MAGIC if data.startswith(magic)), None)


def _file_bytes(source: Source) -> Optional[bytes]:
    try:
        if isinstance(source, (str, os.PathLike)):
            return Path(source).read_bytes()
        return bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else None
    except OSError:
        return None


_TRUNCATED = "the file ends before the image data does (was a download or copy interrupted?)"


def _diagnose(data: bytes, kind: str) -> Optional[str]:
    """What exactly is wrong with a damaged PNG / WebP / JPEG / GIF, from its structure; None if unknown."""
    if kind == "PNG":
        pos = 8
        while pos + 8 <= len(data):
            length, chunk = struct.unpack_from(">I4s", data, pos)
            if not chunk.isalpha() or (pos == 8 and chunk != b"IHDR"):
                return "corrupt PNG: its chunk structure is damaged (not a PNG, or the file is damaged)"
            if pos + 12 + length > len(data):
                break
            if zlib.crc32(data[pos + 4: pos + 8 + length]) != struct.unpack_from(">I", data, pos + 8 + length)[0]:
                label = chunk.decode("latin-1", "replace")
                return f"corrupt PNG: its {label} chunk fails the CRC check (the file is damaged)"
            if chunk == b"IEND":
                return None
            pos += 12 + length
        return f"truncated PNG: {_TRUNCATED}"
    if kind == "WebP" and len(data) >= 12 and len(data) < struct.unpack_from("<I", data, 4)[0] + 8:
        return f"truncated WebP: {_TRUNCATED}"
    if kind == "JPEG" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return f"truncated JPEG: {_TRUNCATED}"
    if kind == "GIF" and not data.rstrip(b"\x00").endswith(b";"):
        return f"truncated GIF: {_TRUNCATED}"
    return None


def _damage_message(name: str, exc: BaseException, source: Source, kind: Optional[str]) -> str:
    """The sentence for a file PIL could not decode; about its content only (never an OS path)."""
    data = _file_bytes(source)
    kind = kind or (_magic_format(data[:16]) if data else None)
    if kind is None:
        return f"{name}: not an image file (or a format that cannot be read)"
    kind = {"WEBP": "WebP", "MPO": "JPEG"}.get(kind, kind)
    detail = _diagnose(data, kind) if data else None
    if detail:
        return f"{name}: {detail}"
    if isinstance(exc, EOFError) or "truncated" in str(exc).lower():
        return f"{name}: truncated {kind}: {_TRUNCATED}"
    if isinstance(exc, UnidentifiedImageError):
        return f"{name}: corrupt {kind}: its header cannot be read"
    return f"{name}: corrupt {kind}: the image data is damaged"


def _sixteen_bit(source: Source) -> Optional[np.ndarray]:
    """PIL cannot hold 48/64-bit RGB(A); OpenCV can. Returns HxWx3|4 float RGB(A) in [0,1] or None."""
    if isinstance(source, Image.Image):
        return None
    import cv2

    if isinstance(source, (str, os.PathLike)):
        arr = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)  # IMREAD_UNCHANGED: no EXIF rotation here either
    else:
        arr = cv2.imdecode(np.frombuffer(source, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        return None
    arr = arr[..., [2, 1, 0, 3][: arr.shape[2]]]  # BGR(A) -> RGB(A)
    return np.ascontiguousarray(arr, dtype=np.float32) / 65535.0


def _read_exif(img: Image.Image, notes: List[str]) -> Tuple[int, Optional[bytes]]:
    """(EXIF orientation, EXIF bytes to keep for output). A corrupt block is noted and ignored, never fatal."""
    raw = img.info.get("exif")
    if isinstance(raw, bytes) and raw:
        exif, problem = parse_exif(raw)
        if exif is None:
            notes.append(f"the EXIF block is corrupt ({problem}): ignored, so no orientation was applied")
            return 1, None
        return orientation_of(exif), exif_for_output(raw)
    if img.format == "TIFF":  # TIFF keeps orientation among its own tags; no separate EXIF block to carry
        try:
            value = img.getexif().get(ORIENTATION_TAG, 1)
            return (int(value) if isinstance(value, int) and 1 <= value <= 8 else 1), None
        except Exception:  # noqa: BLE001 - unreadable tags: decode as stored
            return 1, None
    return 1, None


def _to_srgb(img: Image.Image, notes: List[str]) -> Tuple[Image.Image, Optional[str], Optional[bytes]]:
    """(RGB image in sRGB, description of the profile converted from or None, the ICC bytes converted from)."""
    icc = img.info.get("icc_profile")
    if not icc:
        return img.convert("RGB"), None, None
    if img.mode not in ("RGB", "RGBA", "CMYK"):
        if img.mode not in ("P", "PA"):
            notes.append(f"the embedded ICC profile of this {img.mode} image was ignored (values used as stored)")
        return img.convert("RGB"), None, None
    profile = load_profile(icc)
    if profile is None:
        notes.append("the embedded ICC profile is unreadable: colours were used unconverted (as if sRGB)")
        return img.convert("RGB"), None, None
    description = profile_description(profile)
    if is_srgb(description):
        return img.convert("RGB"), None, None
    try:
        converted = convert_pil_to_srgb(img.convert("RGB") if img.mode == "RGBA" else img, profile)
    except (ImageCms.PyCMSError, OSError, ValueError):
        notes.append(f"the embedded ICC profile '{description}' does not fit this {img.mode} image: colours were "
                     "used unconverted (as if sRGB)")
        return img.convert("RGB"), None, None
    notes.append(f"colours converted to sRGB from the embedded ICC profile '{description}'")
    return converted, description, icc


def read_image(source: Source, *, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = 1) -> DecodedImage:
    """Decode any common image file into upright sRGB float32 RGB [0,1] plus optional alpha.

    Raises ImageLoadError naming the file for: missing/empty/non-image/truncated/corrupt files (the
    message says which, and the format), images over `max_pixels` (checked from the header before
    decoding, so bombs never allocate), images with a side under `min_side`, and float images with
    NaN/inf pixels. EXIF orientation is applied and an embedded ICC profile converted to sRGB; a
    corrupt EXIF block or an unusable profile is noted in `notes`, not fatal. Multi-frame files
    (animated GIF/WebP, multi-page TIFF) use their first frame, noted.
    """
    name = _describe(source)
    kind = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", "Corrupt EXIF")  # noted below by _read_exif instead
            img = _open(source, name)
            kind = img.format
            width, height = img.size
            if width * height > max_pixels:
                have, limit = format_megapixels(width * height, max_pixels)
                raise ImageLoadError(f"{name}: {width}x{height} is {have}, over the limit of {limit}")
            if min(width, height) < min_side:
                raise ImageLoadError(f"{name}: {width}x{height} is too small (needs at least {min_side} px a side)")
            frames = int(getattr(img, "n_frames", 1) or 1)
            if frames > 1:
                img.seek(0)
            img.load()
    except ImageLoadError:
        raise
    except Image.DecompressionBombError:
        raise ImageLoadError(f"{name}: image too large (over the decompression-bomb limit of "
                             f"{Image.MAX_IMAGE_PIXELS * 2 / 1e6:.0f} MP)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise ImageLoadError(_damage_message(name, exc, source, kind)) from None

    notes: List[str] = []
    if frames > 1:
        what = "page" if img.format == "TIFF" else "frame"
        notes.append(f"{img.format} with {frames} {what}s: the first {what} was used")
    orientation, exif = _read_exif(img, notes)
    mode = img.mode
    alpha = None
    bit_depth = 8
    icc_description = None
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
        grey = np.asarray(img, dtype=np.float32)
        bad = int(np.count_nonzero(~np.isfinite(grey)))
        if bad:
            raise ImageLoadError(f"{name}: {bad} of {grey.size} pixels are NaN or infinite (a float image with "
                                 "undefined values cannot be displayed or upscaled)")
        rgb = np.repeat(np.clip(grey, 0, 1)[..., None], 3, axis=2)
    else:
        if mode in ("RGBA", "LA", "PA"):
            alpha = np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0
        rgb8, icc_description, icc = _to_srgb(img, notes)  # L, 1, CMYK, YCbCr, LAB, RGBA -> RGB in sRGB
        rgb = np.asarray(rgb8, dtype=np.float32) / 255.0
        wide = _sixteen_bit(source) if mode in ("RGB", "RGBA") else None
        if wide is not None and wide.shape[:2] == rgb.shape[:2]:
            if wide.shape[2] == 4 and alpha is not None:
                alpha = wide[..., 3]
            wide = wide[..., :3]
            if icc_description is not None:
                wide = convert_float_to_srgb(wide, icc)
            if wide is None:
                notes.append("16-bit image with a table-based ICC profile: converted to sRGB at 8-bit precision")
            else:
                rgb, bit_depth = wide, 16
    rgb, alpha = apply_orientation(rgb, orientation), apply_orientation(alpha, orientation)
    if orientation != 1:
        notes.append(f"turned upright from EXIF orientation {orientation} ({ORIENTATION_WORDS[orientation]})")
    if alpha is not None and float(alpha.min()) >= 1.0:
        alpha = None  # fully opaque: nothing to keep
    return DecodedImage(np.ascontiguousarray(rgb, dtype=np.float32), alpha, was_grey, bit_depth, name, notes,
                        orientation, icc_description, exif, kind or "", frames)


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """[0,1] float -> uint8 with rounding (the quantisation every saved image goes through).

    Works through blocks of rows, so a 16 MP image needs 48 MB more, not two float copies (384 MB)."""
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 0 or arr.size == 0:
        return np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    out = np.empty(arr.shape, np.uint8)
    rows = max(1, (1 << 22) // max(1, arr[0].size))  # ~16 MB of float32 per block
    for start in range(0, arr.shape[0], rows):
        block = arr[start:start + rows] * 255.0
        np.rint(block, out=block)
        np.clip(block, 0, 255, out=block)
        out[start:start + rows] = block
    return out


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
