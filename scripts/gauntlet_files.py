"""The hostile and unusual files of the gauntlet (scripts/gauntlet.py), made on the fly, nothing downloaded.

`image_files(folder)` and `video_files(folder)` write them and return {file name: Expect}: whether a
correct server must refuse the file with a clear message ("refuse") or answer it ("ok"), and for
some valid files a check of the answer (its size, say) so a silently wrong output is caught.
"""
from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Expect:
    outcome: str  # "refuse" or "ok"
    upright: Optional[Tuple[int, int]] = None  # (width, height) the image has once shown upright
    note: str = ""


def picture(h: int = 48, w: int = 40) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], axis=2).astype(np.uint8)


def encoded(arr: np.ndarray, fmt: str = "PNG", mode: Optional[str] = None, **kw) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(arr)
    (img.convert(mode) if mode else img).save(buf, fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(side: int = 20000) -> bytes:
    """A valid grey PNG of side x side zeros (~400 KB compressed, 400 MB decoded), never held decoded here."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    body = b"".join(comp.compress(row * 500) for _ in range(side // 500)) + comp.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def bad_crc_png() -> bytes:
    data = bytearray(encoded(picture()))
    data[29] ^= 0xFF  # the IHDR chunk's CRC
    return bytes(data)


def exif_rotated_jpeg(orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(picture(40, 64)).save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


def _tiff(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "TIFF", **kw)
    return buf.getvalue()


def _multipage_tiff() -> bytes:
    pages = [Image.fromarray(np.roll(picture(), 5 * i, axis=1)) for i in range(3)]
    buf = io.BytesIO()
    pages[0].save(buf, "TIFF", save_all=True, append_images=pages[1:])
    return buf.getvalue()


def _gif() -> bytes:
    frames = [Image.fromarray(np.roll(picture(), 5 * i, axis=1)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def _sixteen(grey: bool) -> Tuple[bytes, str]:
    import cv2

    arr = picture().astype(np.uint16) * 257
    ok, data = cv2.imencode(".png", arr[..., 0] if grey else arr[..., ::-1].copy())
    assert ok
    return data.tobytes(), ".png"


def _palette_transparent() -> bytes:
    img = Image.fromarray(picture()).convert("P", palette=Image.ADAPTIVE, colors=16)
    buf = io.BytesIO()
    img.save(buf, "PNG", transparency=0)
    return buf.getvalue()


def _float_tiff(nan: bool) -> bytes:
    arr = picture()[..., 0].astype(np.float32) / 255
    if nan:
        arr[5:10, 5:10] = np.nan
    return _tiff(Image.fromarray(arr, mode="F"))


IMAGE_MAKERS: Dict[str, Tuple[Callable[[], bytes], Expect]] = {
    "zero_bytes.png": (lambda: b"", Expect("refuse")),
    "random_bytes.png": (lambda: np.random.default_rng(0).bytes(4096), Expect("refuse")),
    "truncated.png": (lambda: encoded(picture())[:-40], Expect("refuse")),
    "truncated.jpg": (lambda: encoded(picture(), "JPEG")[:400], Expect("refuse")),
    "truncated.webp": (lambda: encoded(picture(), "WEBP")[:60], Expect("refuse")),
    "bad_crc.png": (bad_crc_png, Expect("refuse")),
    "text_as.png": (lambda: b"just some text, honestly\n" * 40, Expect("refuse")),
    "pdf_as.jpg": (lambda: b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n", Expect("refuse")),
    "svg_as.png": (lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" '
                           b'height="64"/></svg>', Expect("refuse")),
    "html_as.webp": (lambda: b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>",
                     Expect("refuse")),
    "one_pixel.png": (lambda: encoded(np.zeros((1, 1, 3), np.uint8)), Expect("refuse")),
    "one_by_5000.png": (lambda: encoded(np.zeros((5000, 1, 3), np.uint8)), Expect("refuse")),
    "bomb.png": (bomb_png, Expect("refuse")),
    "over_limit_2001x1000.png": (lambda: encoded(np.zeros((1000, 2001, 3), np.uint8), compress_level=1),
                                 Expect("refuse")),
    "nan_float.tiff": (lambda: _float_tiff(True), Expect("refuse")),
    "plain.png": (lambda: encoded(picture()), Expect("ok", (40, 48))),
    "grey.jpg": (lambda: encoded(picture()[..., 0], "JPEG"), Expect("ok", (40, 48))),
    "sixteen_bit_grey.png": (lambda: _sixteen(True)[0], Expect("ok", (40, 48))),
    "sixteen_bit_rgb.png": (lambda: _sixteen(False)[0], Expect("ok", (40, 48))),
    "rgba.png": (lambda: encoded(np.dstack([picture(), np.full((48, 40), 128, np.uint8)])), Expect("ok", (40, 48))),
    "la.png": (lambda: encoded(np.dstack([picture()[..., 0], picture()[..., 1]]), mode="LA"), Expect("ok", (40, 48))),
    "palette_transparent.png": (_palette_transparent, Expect("ok", (40, 48))),
    "cmyk.jpg": (lambda: encoded(picture(), "JPEG", mode="CMYK"), Expect("ok", (40, 48))),
    "i16.png": (lambda: encoded((picture()[..., 0].astype(np.uint16) * 200), mode="I;16"), Expect("ok", (40, 48))),
    "float.tiff": (lambda: _float_tiff(False), Expect("ok", (40, 48))),
    "multipage.tiff": (_multipage_tiff, Expect("ok", (40, 48), "first page")),
    "animated.gif": (_gif, Expect("ok", (40, 48), "first frame")),
    "exif_orientation_6.jpg": (exif_rotated_jpeg, Expect("ok", (40, 64), "rotated upright")),
    "eight_pixels.png": (lambda: encoded(picture(8, 8)), Expect("ok", (8, 8))),
}


def image_files(folder: Path) -> Dict[str, Expect]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (make, _) in IMAGE_MAKERS.items():
        (folder / name).write_bytes(make())
    return {name: expect for name, (_, expect) in IMAGE_MAKERS.items()}


def _clip(path: Path, frames: int, fps: float, size: Tuple[int, int] = (32, 24), *, vfr: bool = False,
          audio_only: bool = False) -> None:
    """An MP4 (H.264) clip; odd sizes go into Matroska with FFV1, which H.264's 4:2:0 cannot hold."""
    import av

    odd = size[0] % 2 or size[1] % 2
    with av.open(str(path), "w", format="matroska" if odd else "mp4") as out:
        if audio_only:
            stream = out.add_stream("aac", rate=22050)
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            samples.sample_rate = 22050
            for i in range(20):
                samples.pts = i * 1024
                out.mux(stream.encode(samples))
            out.mux(stream.encode(None))
            return
        stream = out.add_stream("ffv1" if odd else "libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv444p" if odd else "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), (i * 9) % 255, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            t += int(1000 / fps) * (3 if vfr and i % 4 == 3 else 1)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


VIDEO_MAKERS: Dict[str, Tuple[Callable[[Path], None], Expect]] = {
    "zero_bytes.mp4": (lambda p: p.write_bytes(b""), Expect("refuse")),
    "random_bytes.mp4": (lambda p: p.write_bytes(np.random.default_rng(1).bytes(8192)), Expect("refuse")),
    "text_as.mp4": (lambda p: p.write_bytes(b"not a video\n" * 100), Expect("refuse")),
    "audio_only.mp4": (lambda p: _clip(p, 0, 25, audio_only=True), Expect("refuse")),
    "over_long.mp4": (lambda p: _clip(p, 70, 5), Expect("refuse")),
    "too_many_frames.mp4": (lambda p: _clip(p, 320, 60), Expect("refuse")),
    "four_k.mp4": (lambda p: _clip(p, 2, 25, (3840, 2160)), Expect("refuse")),
    "one_frame.mp4": (lambda p: _clip(p, 1, 25), Expect("ok", (64, 48))),
    "odd_size.mkv": (lambda p: _clip(p, 6, 25, (33, 25)), Expect("ok", (34, 26), "interpolated x2, padded")),
    "short.mp4": (lambda p: _clip(p, 8, 25), Expect("ok", (64, 48))),
    "vfr.mp4": (lambda p: _clip(p, 16, 25, vfr=True), Expect("refuse", note="variable frame rate")),
}


def video_files(folder: Path) -> Dict[str, Expect]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (make, _) in VIDEO_MAKERS.items():
        make(folder / name)
    truncated = (folder / "short.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(truncated[: len(truncated) * 2 // 3])
    expects = {name: expect for name, (_, expect) in VIDEO_MAKERS.items()}
    expects["truncated.mp4"] = Expect("refuse")
    return expects
