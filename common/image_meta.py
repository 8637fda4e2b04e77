"""Colour profiles and EXIF for images entering and leaving the project.

Everything the models see is sRGB, so an input tagged with another ICC profile (Display P3, Adobe RGB,
a CMYK press profile) is converted to sRGB on the way in; outputs are tagged sRGB on the way out.
8-bit images go through LittleCMS (PIL.ImageCms, any profile type). 16-bit RGB images (which PIL
cannot hold) are converted in float here for matrix/TRC profiles — what Adobe RGB, Display P3 and
ProPhoto are — so they keep their 16-bit precision; a 16-bit image with a LUT-only profile is left
unconverted and the note says so.

EXIF: orientation is applied to the pixels on the way in and removed from the EXIF kept for output
(so no viewer rotates the result a second time).
"""
from __future__ import annotations

import io
import struct
import warnings
from functools import lru_cache
from typing import Callable, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageCms

ORIENTATION_TAG = 0x0112
EXIF_IFD_TAG = 0x8769
PIXEL_X_DIMENSION, PIXEL_Y_DIMENSION = 0xA002, 0xA003


# ----------------------------------------------------------------------------------------------- ICC
@lru_cache(maxsize=1)
def srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@lru_cache(maxsize=1)
def srgb_icc_bytes() -> bytes:
    """The sRGB profile written into every output (LittleCMS's built-in sRGB, 588 bytes)."""
    return srgb_profile().tobytes()


def profile_description(profile: ImageCms.ImageCmsProfile) -> str:
    try:
        return (ImageCms.getProfileDescription(profile) or "").strip() or "unnamed profile"
    except (ImageCms.PyCMSError, OSError, ValueError):
        return "unnamed profile"


def load_profile(icc: bytes) -> Optional[ImageCms.ImageCmsProfile]:
    """A parsed profile, or None when the bytes are not a usable ICC profile."""
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def is_srgb(description: str) -> bool:
    return "srgb" in description.lower().replace(" ", "")


def convert_pil_to_srgb(img: Image.Image, profile: ImageCms.ImageCmsProfile) -> Image.Image:
    """RGB / CMYK PIL image in `profile` -> RGB in sRGB (LittleCMS, perceptual where the profile has it)."""
    return ImageCms.profileToProfile(img, profile, srgb_profile(), outputMode="RGB")


def _tags(icc: bytes) -> dict:
    count = struct.unpack_from(">I", icc, 128)[0]
    if count > 200 or 132 + 12 * count > len(icc):
        raise ValueError("bad tag table")
    tags = {}
    for i in range(count):
        sig, offset, size = struct.unpack_from(">4sII", icc, 132 + 12 * i)
        if offset + size > len(icc):
            raise ValueError("tag outside the profile")
        tags[sig] = icc[offset: offset + size]
    return tags


def _s15(data: bytes, at: int, n: int) -> np.ndarray:
    return np.array(struct.unpack_from(f">{n}i", data, at), dtype=np.float64) / 65536.0


def _curve(tag: bytes) -> Callable[[np.ndarray], np.ndarray]:
    """An ICC curv/para tag as a function on [0,1]."""
    kind = tag[:4]
    if kind == b"curv":
        n = struct.unpack_from(">I", tag, 8)[0]
        if n == 0:
            return lambda x: x
        if n == 1:
            gamma = struct.unpack_from(">H", tag, 12)[0] / 256.0
            return lambda x: np.power(x, gamma)
        table = np.array(struct.unpack_from(f">{n}H", tag, 12), dtype=np.float64) / 65535.0
        grid = np.linspace(0.0, 1.0, n)
        return lambda x: np.interp(x, grid, table)
    if kind == b"para":
        ftype = struct.unpack_from(">H", tag, 8)[0]
        n = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}[ftype]
        p = list(_s15(tag, 12, n)) + [0.0] * (7 - n)
        g, a, b, c, d, e, f = p
        if ftype == 0:
            return lambda x: np.power(x, g)
        if ftype == 1:
            return lambda x: np.where(x >= -b / a, np.power(np.maximum(a * x + b, 0), g), 0.0)
        if ftype == 2:
            return lambda x: np.where(x >= -b / a, np.power(np.maximum(a * x + b, 0), g) + c, c)
        if ftype == 3:
            return lambda x: np.where(x >= d, np.power(np.maximum(a * x + b, 0), g), c * x)
        return lambda x: np.where(x >= d, np.power(np.maximum(a * x + b, 0), g) + e, c * x + f)
    raise ValueError(f"unsupported curve type {kind!r}")


def matrix_shaper(icc: bytes) -> Optional[Tuple[np.ndarray, List[Callable]]]:
    """(3x3 RGB->XYZ(D50) matrix, [r, g, b] TRCs) of an RGB matrix/TRC profile, or None."""
    try:
        if icc[16:20] != b"RGB ":
            return None
        tags = _tags(icc)
        if not all(k in tags for k in (b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC")):
            return None
        matrix = np.stack([_s15(tags[k], 8, 3) for k in (b"rXYZ", b"gXYZ", b"bXYZ")], axis=1)
        return matrix, [_curve(tags[k]) for k in (b"rTRC", b"gTRC", b"bTRC")]
    except (struct.error, ValueError, KeyError, IndexError):
        return None


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def convert_float_to_srgb(rgb: np.ndarray, icc: bytes, rows: int = 512) -> Optional[np.ndarray]:
    """HxWx3 float [0,1] in a matrix/TRC profile -> sRGB float [0,1] at full precision; None if unsupported."""
    source, target = matrix_shaper(icc), matrix_shaper(srgb_icc_bytes())
    if source is None or target is None:
        return None
    to_xyz, trcs = source
    to_srgb = np.linalg.inv(target[0]) @ to_xyz  # both relative to D50 (ICC PCS), as LittleCMS does
    out = np.empty_like(rgb, dtype=np.float32)
    for top in range(0, rgb.shape[0], rows):
        band = rgb[top: top + rows].astype(np.float64)
        linear = np.stack([trcs[c](np.clip(band[..., c], 0, 1)) for c in range(3)], axis=-1)
        out[top: top + rows] = srgb_encode(linear @ to_srgb.T)
    return out


# ---------------------------------------------------------------------------------------------- EXIF
def parse_exif(raw: bytes) -> Tuple[Optional[Image.Exif], Optional[str]]:
    """(Exif, None) or (None, why it is unusable). PIL only warns on corrupt EXIF; that counts as corrupt."""
    exif = Image.Exif()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            exif.load(raw)
        except Exception as exc:  # noqa: BLE001 - any parser failure means "corrupt EXIF", never a crash
            return None, f"unreadable ({type(exc).__name__})"
    problems = [str(w.message).strip() for w in caught if "exif" in str(w.message).lower()]
    if problems:
        return None, problems[0].rstrip(".")
    if len(exif) == 0 and len(raw) > 14:
        return None, "no readable tags"
    return exif, None


def orientation_of(exif: Optional[Image.Exif]) -> int:
    value = exif.get(ORIENTATION_TAG, 1) if exif is not None else 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


ORIENTATION_WORDS = {2: "mirrored left-right", 3: "rotated 180°", 4: "mirrored top-bottom",
                     5: "transposed", 6: "rotated 90° clockwise", 7: "transversed", 8: "rotated 90° anticlockwise"}


def apply_orientation(arr: Optional[np.ndarray], orientation: int) -> Optional[np.ndarray]:
    """Undo EXIF orientation on an HxW[xC] array (the same result as PIL.ImageOps.exif_transpose)."""
    if arr is None or orientation == 1:
        return arr
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.swapaxes(0, 1), 6: lambda a: a[::-1].swapaxes(0, 1),
           7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: a[:, ::-1].swapaxes(0, 1)}
    return np.ascontiguousarray(ops[orientation](arr))


def exif_for_output(raw: Optional[bytes], size: Optional[Tuple[int, int]] = None) -> Optional[bytes]:
    """EXIF bytes to write: orientation removed, PixelX/YDimension set to `size` (w, h); None if unusable."""
    if not raw:
        return None
    exif = parse_exif(raw)[0]
    if exif is None:
        return None
    exif.pop(ORIENTATION_TAG, None)
    if size is not None and EXIF_IFD_TAG in exif:
        try:
            sub = exif.get_ifd(EXIF_IFD_TAG)
            for tag, value in ((PIXEL_X_DIMENSION, size[0]), (PIXEL_Y_DIMENSION, size[1])):
                if tag in sub:
                    sub[tag] = int(value)
        except Exception:  # noqa: BLE001 - a sub-IFD we cannot parse is left as it was
            pass
    try:
        return exif.tobytes()
    except Exception:  # noqa: BLE001 - tags PIL cannot re-serialise: drop the EXIF rather than fail the save
        return None
