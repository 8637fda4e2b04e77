"""Bad input through the API: each file gets a clear message (or a correct result), and the server keeps serving.

Every case is followed by a small good request that must succeed. The decompression bomb is a real,
decodable 20000x20000 PNG (~400 KB compressed, 400 MB decoded): it must be refused from its header,
which the peak-RSS check proves (the server runs in this process).
"""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from serve.memory import status_kb

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def png_bytes(arr: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def picture(h=48, w=40) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], axis=2).astype(np.uint8)


def bomb_png(side: int = 20000) -> bytes:
    """A valid greyscale PNG of side x side zeros, compressed row by row (never held decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    body = b"".join(comp.compress(row * 500) for _ in range(side // 500)) + comp.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_inputs")
    good_png = png_bytes(picture())
    good_jpg = png_bytes(picture(), "JPEG", quality=90)
    files = {
        "notes.txt": b"this is a text file, not an image\n" * 10,
        "fake.png": b"not a png at all, only the name says so" * 5,
        "truncated.png": good_png[: len(good_png) // 2],
        "truncated.jpg": good_jpg[: len(good_jpg) // 2],
        "empty.png": b"",
        "one_pixel.png": png_bytes(np.zeros((1, 1, 3), np.uint8)),
        "bomb.png": bomb_png(),
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    ok, tiff = cv2.imencode(".tiff", (picture().astype(np.uint16) * 257)[..., ::-1].copy())
    assert ok
    (d / "sixteen_bit.tiff").write_bytes(tiff.tobytes())
    Image.fromarray(picture()).convert("CMYK").save(d / "cmyk.jpg", "JPEG")
    frames = [Image.fromarray(np.roll(picture(), 5 * i, axis=1)) for i in range(3)]
    frames[0].save(d / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return d


def upscale(client, path, scale=2, **kw):
    args = {"model": "flashsr", "scale": scale, "tile": 256, "backend": "auto", "compare": False, **kw}
    return client.predict(handle_file(str(path)), args["model"], args["scale"], args["tile"], args["backend"],
                          args["compare"], api_name="/upscale")


def still_serving(client):
    (_, after), _, _, info = upscale(client, EXAMPLES / "sr_tents_lr.png")
    assert Image.open(after).size == (info["output_size"][0], info["output_size"][1])


@pytest.mark.parametrize("name, message", [
    ("notes.txt", "notes.txt: not an image file"),
    ("fake.png", "fake.png: not an image file"),
    ("truncated.png", "truncated.png: truncated PNG"),
    ("truncated.jpg", "truncated.jpg: truncated JPEG"),
    ("empty.png", "empty.png: file is empty"),
    ("one_pixel.png", "one_pixel.png: 1x1 is too small"),
    ("bomb.png", "bomb.png: image too large"),  # PIL refuses > 179 MP from the header, before read_image's limit
])
def test_bad_image_gets_a_clear_message(client, bad_files, name, message):
    with pytest.raises(AppError) as caught:
        upscale(client, bad_files / name)
    assert message in str(caught.value)
    assert "/tmp" not in str(caught.value)  # the user's file name, not the server's temp path
    still_serving(client)


def test_bomb_is_refused_without_decoding(client, bad_files):
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
    except OSError:
        pytest.skip("cannot reset the peak RSS here")
    before = status_kb("VmRSS")
    with pytest.raises(AppError, match="too large|over the limit"):
        upscale(client, bad_files / "bomb.png")
    grown_mb = (status_kb("VmHWM") - before) / 1024
    assert grown_mb < 150, f"peak RSS grew {grown_mb:.0f} MB: the 400 MB bomb was decoded"


@pytest.mark.parametrize("name, check", [
    ("sixteen_bit.tiff", "16-bit"),
    ("cmyk.jpg", None),
    ("animated.gif", "first frame"),
])
def test_unusual_but_valid_images_work(client, bad_files, name, check):
    (before, after), download, summary, info = upscale(client, bad_files / name)
    out = np.asarray(Image.open(after))
    assert out.shape == (96, 80, 3) and out.std() > 5
    if check:
        assert check in summary
    if name == "sixteen_bit.tiff":
        assert cv2.imread(download, cv2.IMREAD_UNCHANGED).dtype == np.uint16
    still_serving(client)


@pytest.mark.parametrize("kwargs, message", [
    ({"tile": 32}, "too small"),
    ({"scale": 3}, "must be one of 2, 4"),
    ({"backend": "quantum"}, "must be one of"),
])
def test_bad_options_get_a_clear_message(client, kwargs, message):
    with pytest.raises(AppError, match=message):
        upscale(client, EXAMPLES / "sr_tents_lr.png", **kwargs)
    still_serving(client)


def test_bad_input_in_other_tabs(client, bad_files):
    from ui.uncertainty_tab import available_models

    if available_models():
        with pytest.raises(AppError, match="must be from 2 to 128"):
            client.predict(handle_file(str(EXAMPLES / "sr_tents_lr.png")), "flashsr_x2", 500, "mc", "auto",
                           api_name="/uncertainty")
        with pytest.raises(AppError, match="not an image"):
            client.predict(handle_file(str(bad_files / "notes.txt")), "flashsr_x2", 4, "mc", "auto",
                           api_name="/uncertainty")
    with pytest.raises(AppError, match="Nothing to do"):
        client.predict(handle_file(str(EXAMPLES / "clip_cdfi.webm")), 1, "none", "auto", None, api_name="/video")
    still_serving(client)


def _clip(path: Path, frames: int, fps: float) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), fps, (32, 24))
    for i in range(frames):
        writer.write(np.full((24, 32, 3), (i * 7) % 255, np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "notes.txt", "not a readable video"),
    (lambda d: d / "empty.png", "file is empty"),
    (lambda d: _clip(d / "long.webm", 60, 5), "longer than the limit of 10 s"),  # 12 s
    (lambda d: _clip(d / "many.webm", 320, 60), "more than 300 frames"),  # 5.3 s at 60 fps
], ids=["not-a-video", "zero-byte", "too-long", "too-many-frames"])
def test_bad_video_gets_a_clear_message(client, bad_files, make, message):
    source = make(bad_files)
    renamed = bad_files / f"{source.stem}_as.mp4" if source.suffix != ".webm" else source
    if renamed != source:
        renamed.write_bytes(source.read_bytes())
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(renamed)), 1, "flashsr_x2", "auto", None, api_name="/video")
    still_serving(client)
