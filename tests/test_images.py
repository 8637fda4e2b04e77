"""read_image: every kind of file users and datasets throw at it."""
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from common.images import ImageLoadError, read_image


def _png_bytes(img: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture
def rgb_image(rng):
    return Image.fromarray((rng.random((20, 30, 3)) * 255).astype(np.uint8))


def test_rgb_roundtrip(tmp_path, rgb_image):
    path = tmp_path / "a.png"
    rgb_image.save(path)
    img = read_image(path)
    assert img.rgb.shape == (20, 30, 3) and img.rgb.dtype == np.float32
    assert np.allclose(img.rgb * 255, np.asarray(rgb_image), atol=1e-3)
    assert img.alpha is None and not img.was_grey and img.bit_depth == 8


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "RGBA", "LA"])
def test_modes_become_rgb(tmp_path, rgb_image, mode):
    img = rgb_image.convert(mode)
    fmt, ext = ("JPEG", "jpg") if mode == "CMYK" else ("PNG", "png")
    if mode in ("RGBA", "LA"):
        alpha = Image.new("L", img.size, 128)
        img.putalpha(alpha)
    path = tmp_path / f"x.{ext}"
    img.save(path, format=fmt)
    out = read_image(path)
    assert out.rgb.shape == (20, 30, 3)
    assert 0 <= out.rgb.min() and out.rgb.max() <= 1
    assert out.was_grey == (mode in ("L", "1", "LA"))
    if mode in ("RGBA", "LA"):
        assert out.alpha is not None and abs(float(out.alpha.mean()) - 128 / 255) < 1e-3


def test_sixteen_bit_grey_and_rgb(tmp_path):
    grey = (np.linspace(0, 65535, 24 * 16).reshape(16, 24)).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), grey)
    out = read_image(tmp_path / "g16.png")
    assert out.bit_depth == 16 and out.was_grey
    assert abs(float(out.rgb[..., 0].max()) - 1.0) < 1e-6 and np.allclose(out.rgb[..., 0], grey / 65535, atol=1e-5)
    rgb = np.stack([grey, grey[::-1], np.full_like(grey, 1000)], axis=2)
    cv2.imwrite(str(tmp_path / "c16.png"), rgb[..., ::-1])  # OpenCV writes BGR
    cv2.imwrite(str(tmp_path / "c16.tif"), rgb[..., ::-1])
    for name in ("c16.png", "c16.tif"):
        out = read_image(tmp_path / name)
        assert out.bit_depth == 16
        assert np.allclose(out.rgb, rgb / 65535, atol=1e-5)


def test_palette_with_transparency_keeps_alpha(tmp_path):
    img = Image.new("P", (8, 8), 0)
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.paste(1, (0, 0, 4, 8))
    img.info["transparency"] = 0
    img.save(tmp_path / "p.png", transparency=0)
    out = read_image(tmp_path / "p.png")
    assert out.alpha is not None and out.alpha[:, :4].min() == 1 and out.alpha[:, 4:].max() == 0


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=50)
    out = read_image(tmp_path / "a.gif")
    assert out.rgb[..., 0].mean() > 0.9 and out.rgb[..., 2].mean() < 0.1


@pytest.mark.parametrize("case", ["empty", "text", "truncated_png", "truncated_jpeg", "missing", "folder"])
def test_bad_files_raise_clear_error(tmp_path, rgb_image, case):
    path = tmp_path / "bad.png"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("hello, I am not an image")
    elif case == "truncated_png":
        path.write_bytes(_png_bytes(rgb_image)[:200])
    elif case == "truncated_jpeg":
        path = tmp_path / "bad.jpg"
        big = rgb_image.resize((300, 200))
        path.write_bytes(_png_bytes(big, "JPEG", quality=95)[:1500])
    elif case == "missing":
        path = tmp_path / "nope.png"
    elif case == "folder":
        path = tmp_path
    with pytest.raises(ImageLoadError) as err:
        read_image(path)
    assert str(path) in str(err.value)


def test_pixel_limit_checked_before_decoding(tmp_path):
    # A 20000x20000 PNG header: must be refused from the header, without allocating 1.2 GB.
    Image.new("L", (20000, 20000)).save(tmp_path / "bomb.png", optimize=False, compress_level=9)
    with pytest.raises(ImageLoadError, match="over the limit|too large"):
        read_image(tmp_path / "bomb.png", max_pixels=50_000_000)


def test_min_side(tmp_path):
    Image.new("RGB", (1, 1)).save(tmp_path / "one.png")
    with pytest.raises(ImageLoadError, match="too small"):
        read_image(tmp_path / "one.png", min_side=4)
    assert read_image(tmp_path / "one.png").rgb.shape == (1, 1, 3)


def test_bytes_input(rgb_image):
    assert read_image(_png_bytes(rgb_image)).rgb.shape == (20, 30, 3)
    with pytest.raises(ImageLoadError, match="empty"):
        read_image(b"")


def test_the_resized_preview_has_the_pixels_of_the_float_path(tmp_path):
    """ui.common.save_resized_png skips bicubic_resize's float copy at the output size (192 MB at 16 MP)
    and writes the same 8-bit pixels, with and without alpha."""
    from PIL import Image

    from common.resize import bicubic_resize
    from ui.common import save_png, save_resized_png

    rng = np.random.default_rng(3)
    for channels in (3, 4):
        img = rng.random((21, 30, channels), dtype=np.float32)
        new = save_resized_png(img, (63, 90), tmp_path / f"new{channels}.png")
        old = save_png(bicubic_resize(img, (63, 90)), tmp_path / f"old{channels}.png")
        assert np.array_equal(np.asarray(Image.open(new)), np.asarray(Image.open(old)))
