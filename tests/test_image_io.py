"""Image input/output: EXIF orientation, ICC profiles, damaged files, and every output format's round trip.

The ICC profiles are built here byte by byte (no profile files ship with the OS or the repo): an
Adobe-RGB-like and a Display-P3-like matrix/TRC profile, and a CMYK press-like LUT profile whose inks
are deliberately not PIL's naive CMYK, so a conversion that did not happen shows.
"""
import io
import struct

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from common.image_meta import srgb_icc_bytes
from common.image_write import png_with_chunks, write_image
from common.images import ImageLoadError, read_image

D50 = (0.9642, 1.0, 0.8249)
SRGB_D50 = np.array([[0.43607, 0.38515, 0.14307], [0.22249, 0.71687, 0.06061], [0.01392, 0.09708, 0.71410]])
ADOBE_D50 = np.array([[0.60974, 0.20528, 0.14919], [0.31111, 0.62567, 0.06322], [0.01947, 0.06087, 0.74457]])
P3_D50 = np.array([[0.51512, 0.29198, 0.15710], [0.24120, 0.69225, 0.06657], [-0.00105, 0.04189, 0.78407]])


def s15(v):
    return struct.pack(">i", round(v * 65536))


def xyz_tag(xyz):
    return b"XYZ " + bytes(4) + b"".join(s15(v) for v in xyz)


def desc_tag(text):
    ascii_ = text.encode() + b"\0"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_)) + ascii_ + bytes(8) + bytes(3) + bytes(67)


def build_icc(space, pcs, device_class, tags):
    offset, table, data = 128 + 4 + 12 * len(tags), b"", b""
    for sig, body in tags.items():
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body + bytes(-len(body) % 4)
    header = (struct.pack(">I", offset + len(data)) + b"lcms" + struct.pack(">I", 0x02100000) + device_class
              + space + pcs + bytes(12) + b"acsp" + b"APPL" + bytes(24) + b"".join(s15(v) for v in D50)
              + b"lcms" + bytes(44))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def matrix_profile(name, matrix, trc):
    tags = {b"desc": desc_tag(name), b"wtpt": xyz_tag(D50)}
    for i, c in enumerate((b"r", b"g", b"b")):
        tags[c + b"XYZ"] = xyz_tag(matrix[:, i])
    for c in (b"r", b"g", b"b"):
        tags[c + b"TRC"] = trc
    return build_icc(b"RGB ", b"XYZ ", b"mntr", tags)


ADOBE_TRC = b"curv" + bytes(4) + struct.pack(">IH", 1, 563) + bytes(2)  # gamma 563/256
SRGB_PARA = b"para" + bytes(4) + struct.pack(">H", 3) + bytes(2) + b"".join(
    s15(v) for v in (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))


def adobe_rgb():
    return matrix_profile("Adobe RGB (1998) test", ADOBE_D50, ADOBE_TRC)


def display_p3():
    return matrix_profile("Display P3 test", P3_D50, SRGB_PARA)


def srgb_encode(x):
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def srgb_decode(v):
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def expected_srgb(rgb, matrix, linearize):
    """Independent reference: source RGB -> XYZ (D50) -> sRGB, colorimetric, clipped."""
    return srgb_encode(linearize(rgb) @ (np.linalg.inv(SRGB_D50) @ matrix).T)


INKS = {"C": (0.0, 0.63, 0.86), "M": (0.85, 0.0, 0.55), "Y": (1.0, 0.9, 0.0), "K": (0.1, 0.1, 0.1)}


def ink_rgb(cmyk):
    rgb = np.ones(3)
    for ink, amount in zip("CMYK", cmyk):
        rgb = rgb * (1 - amount + amount * np.array(INKS[ink]))
    return rgb


def lab_d50(rgb):
    xyz = srgb_decode(rgb) @ SRGB_D50.T / np.array(D50)
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def cmyk_profile():
    """CMYK -> Lab lut16 (mft2) with 2 grid points per ink: the 16 ink combinations of INKS."""
    clut = b""
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    L, a, b = lab_d50(ink_rgb((c, m, y, k)))
                    clut += struct.pack(">3H", round(L / 100 * 0xFF00), round((a + 128) * 256), round((b + 128) * 256))
    identity = b"".join(s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut = (b"mft2" + bytes(4) + bytes([4, 3, 2, 0]) + identity + struct.pack(">HH", 2, 2)
           + struct.pack(">2H", 0, 65535) * 4 + clut + struct.pack(">2H", 0, 65535) * 3)
    return build_icc(b"CMYK", b"Lab ", b"prtr", {b"desc": desc_tag("Press CMYK test"), b"wtpt": xyz_tag(D50),
                                                   b"A2B0": lut})


PATCHES = np.array([[40, 90, 200], [200, 60, 40], [120, 200, 90], [128, 128, 128]], np.uint8)


def patch_image():
    return np.repeat(np.repeat(PATCHES[None], 8, axis=0), 8, axis=1)  # 8x32 px, four 8x8 colour patches


@pytest.mark.parametrize("profile, matrix, linearize", [
    (adobe_rgb, ADOBE_D50, lambda v: v ** (563 / 256)),
    (display_p3, P3_D50, srgb_decode),
])
def test_wide_gamut_profiles_are_converted_to_srgb(tmp_path, profile, matrix, linearize):
    path = tmp_path / "tagged.png"
    Image.fromarray(patch_image()).save(path, icc_profile=profile())
    out = read_image(path)
    want = expected_srgb(PATCHES / 255.0, matrix, linearize)
    got = out.rgb[4, 4::8]
    assert np.abs(got - want).max() < 2.5 / 255, (got * 255, want * 255)
    assert np.abs(got - PATCHES / 255.0).max() > 10 / 255  # the colours really moved (wider gamut: more saturated)
    assert out.icc_profile.endswith("test") and "converted to sRGB" in out.notes[0]
    # 16-bit: converted in float from the same profile, keeping 16-bit precision, agreeing with LittleCMS
    sixteen = patch_image().astype(np.uint16) * 257
    png = cv2.imencode(".png", sixteen[..., ::-1].copy())[1]
    (tmp_path / "tagged16.png").write_bytes(png_with_chunks(png.tobytes(), profile(), None))
    out16 = read_image(tmp_path / "tagged16.png")
    assert out16.bit_depth == 16 and out16.icc_profile == out.icc_profile
    assert np.abs(out16.rgb[4, 4::8] - want).max() < 1.5 / 255
    assert np.abs(out16.rgb - out.rgb).max() < 2.5 / 255


def test_cmyk_jpeg_with_profile_uses_the_profile(tmp_path):
    inks = [(0, 0, 0, 0), (1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (1, 1, 0, 0)]
    cmyk = np.repeat(np.repeat((np.array(inks)[None] * 255).astype(np.uint8), 16, axis=0), 16, axis=1)
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "press.jpg", quality=100, icc_profile=cmyk_profile())
    out = read_image(tmp_path / "press.jpg")
    got = out.rgb[8, 8::16]
    want = np.array([ink_rgb(i) for i in inks])
    assert np.abs(got - want).max() < 5 / 255, (got * 255, want * 255)
    assert out.icc_profile == "Press CMYK test"
    naive = read_image(_without_icc(tmp_path / "press.jpg", tmp_path)).rgb[8, 8::16]
    assert abs(naive[1, 1] - 1.0) < 0.02 and abs(got[1, 1] - 0.63) < 0.03  # PIL's naive cyan vs the profile's


def _without_icc(path, tmp_path):
    img = Image.open(path)
    img.info.pop("icc_profile", None)
    img.save(tmp_path / "plain.jpg", quality=100)
    return tmp_path / "plain.jpg"


def test_unknown_icc_profile_decodes_unconverted_with_a_note(tmp_path):
    Image.fromarray(patch_image()).save(tmp_path / "odd.png", icc_profile=b"definitely not a profile" * 8)
    out = read_image(tmp_path / "odd.png")
    assert np.abs(out.rgb * 255 - patch_image()).max() < 1e-3 and out.icc_profile is None
    assert any("ICC profile is unreadable" in n for n in out.notes)


def test_srgb_profile_is_not_converted(tmp_path):
    Image.fromarray(patch_image()).save(tmp_path / "s.png", icc_profile=srgb_icc_bytes())
    out = read_image(tmp_path / "s.png")
    assert out.notes == [] and np.abs(out.rgb * 255 - patch_image()).max() < 1e-3


def _exif(orientation, make="TestCam"):
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = make
    return exif.tobytes()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pil(tmp_path, orientation):
    rng = np.random.default_rng(orientation)
    Image.fromarray((rng.random((6, 10, 3)) * 255).astype(np.uint8)).save(tmp_path / "o.png", exif=_exif(orientation))
    out = read_image(tmp_path / "o.png")
    want = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")), np.float32) / 255
    assert out.rgb.shape == want.shape and np.allclose(out.rgb, want, atol=1e-6)
    assert out.orientation == orientation
    kept = Image.Exif()
    kept.load(out.exif)
    assert 0x0112 not in kept and kept[0x010F] == "TestCam"  # EXIF kept for output, minus orientation
    assert any(f"EXIF orientation {orientation}" in n for n in out.notes) == (orientation != 1)


def test_orientation_6_photo_comes_out_upright(tmp_path):
    upright = np.zeros((40, 20, 3), np.uint8)  # tall, red block at the top
    upright[:10] = (255, 0, 0)
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # how a camera held sideways stores it (orientation 6)
    Image.fromarray(stored).save(tmp_path / "phone.jpg", quality=95, exif=_exif(6))
    out = read_image(tmp_path / "phone.jpg")
    assert out.rgb.shape == (40, 20, 3)
    assert out.rgb[:8, :, 0].mean() > 0.9 and out.rgb[12:, :, 0].mean() < 0.1
    assert "turned upright from EXIF orientation 6" in " ".join(out.notes)
    sixteen = cv2.imencode(".png", stored.astype(np.uint16)[..., ::-1] * 257)[1].tobytes()  # 16-bit path too
    (tmp_path / "phone16.png").write_bytes(png_with_chunks(sixteen, None, _exif(6)))
    out16 = read_image(tmp_path / "phone16.png")
    assert out16.bit_depth == 16 and out16.rgb.shape == (40, 20, 3) and out16.rgb[:8, :, 0].mean() > 0.9


def test_corrupt_exif_decodes_with_a_note(tmp_path):
    broken = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05\x01\x12\x00\x03\xff\xff"
    Image.fromarray(patch_image()).save(tmp_path / "bad_exif.jpg", exif=broken)
    out = read_image(tmp_path / "bad_exif.jpg")
    assert out.rgb.shape == (8, 32, 3) and out.orientation == 1 and out.exif is None
    assert any("EXIF block is corrupt" in n for n in out.notes)


def test_nan_float_tiff_is_refused(tmp_path):
    arr = np.full((8, 8), 0.5, np.float32)
    arr[2, 3], arr[4, 4] = np.nan, np.inf
    Image.fromarray(arr, mode="F").save(tmp_path / "nan.tif")
    with pytest.raises(ImageLoadError, match=r"nan.tif: 2 of 64 pixels are NaN or infinite"):
        read_image(tmp_path / "nan.tif")


def _encoded(fmt, **kw):
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)).save(buf, fmt, **kw)
    return buf.getvalue()


def _flip_byte(data, at):
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


@pytest.mark.parametrize("name, data, message", [
    ("crc.png", lambda: _flip_byte(_encoded("PNG"), 29),
     "crc.png: corrupt PNG: its IHDR chunk fails the CRC check"),
    ("cut.png", lambda: _encoded("PNG")[:300], "cut.png: truncated PNG"),
    ("cut.jpg", lambda: _encoded("JPEG")[:2000], "cut.jpg: truncated JPEG"),
    ("cut.webp", lambda: _encoded("WEBP")[:400], "cut.webp: truncated WebP"),
    ("text.png", lambda: b"just some text, no image", "text.png: not an image file"),
])
def test_damaged_files_say_what_is_wrong(tmp_path, name, data, message):
    (tmp_path / name).write_bytes(data())
    with pytest.raises(ImageLoadError) as err:
        read_image(tmp_path / name)
    assert str(err.value).startswith(str(tmp_path / name)) and message in str(err.value)
    with pytest.raises(ImageLoadError) as from_bytes:  # uploads as bytes get the same diagnosis
        read_image(data())
    assert message.split(": ", 1)[1] in str(from_bytes.value)


def test_pixel_limit_message_shows_the_difference(tmp_path):
    Image.new("L", (2001, 1000)).save(tmp_path / "big.png")
    with pytest.raises(ImageLoadError, match=r"2001x1000 is 2\.001 MP, over the limit of 2\.000 MP"):
        read_image(tmp_path / "big.png", max_pixels=2_000_000)


def test_multipage_and_animated_files_note_the_first_frame(tmp_path):
    pages = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    pages[0].save(tmp_path / "anim.gif", save_all=True, append_images=pages[1:], duration=40)
    tif, gif = read_image(tmp_path / "pages.tif"), read_image(tmp_path / "anim.gif")
    assert tif.frames == 3 and "TIFF with 3 pages: the first page was used" in tif.notes
    assert gif.frames == 3 and "first frame" in gif.notes[0] and gif.rgb[..., 0].mean() > 0.9


# ------------------------------------------------------------------------------------------- writing
def rgba_float(h=12, w=16):
    rng = np.random.default_rng(3)
    img = rng.random((h, w, 4)).astype(np.float32)
    img[..., 3] = np.linspace(0, 1, w)[None]
    return img


@pytest.mark.parametrize("fmt, ext", [("png", "png"), ("jpeg", "jpg"), ("webp", "webp"),
                                      ("webp-lossless", "webp"), ("tiff", "tif")])
def test_each_format_round_trips_with_icc_and_exif(tmp_path, fmt, ext):
    image = rgba_float()
    path = tmp_path / f"out.{ext}"
    report = write_image(image, path, fmt, quality=90, exif=_exif(6, "Keep"))
    back = Image.open(path)
    assert back.info.get("icc_profile") == srgb_icc_bytes() and report["icc"] == "sRGB"
    exif = back.getexif()
    assert exif.get(0x010F) == "Keep" and 0x0112 not in exif and report["exif"]
    arr = np.asarray(back, np.float32) / 255
    if fmt == "jpeg":
        assert back.mode == "RGB" and report["alpha"] == "flattened onto white"
        flat = image[..., :3] * image[..., 3:] + (1 - image[..., 3:])
        assert np.abs(arr - flat).mean() < 0.06 and "JPEG has no alpha" in report["notes"][0]
    else:
        assert back.mode == "RGBA" and report["alpha"] == "kept"
        if fmt != "webp":
            assert np.abs(arr - image).max() <= 0.5 / 255 + 1e-6  # lossless
    assert read_image(path).notes == []  # our own sRGB tag is recognised, nothing converted


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_sixteen_bit_stays_sixteen_bit(tmp_path, ext):
    image = rgba_float()
    report = write_image(image, tmp_path / f"deep.{ext}", bit_depth=16, exif=_exif(1))
    back = cv2.imread(str(tmp_path / f"deep.{ext}"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and report["bit_depth"] == 16
    assert np.array_equal(back[..., [2, 1, 0, 3]], np.rint(image * 65535).astype(np.uint16))
    assert Image.open(tmp_path / f"deep.{ext}").info.get("icc_profile") == srgb_icc_bytes()
    if ext == "png":
        assert report["exif"] and Image.open(tmp_path / "deep.png").getexif()[0x010F] == "TestCam"
    decoded = read_image(tmp_path / f"deep.{ext}")
    assert decoded.bit_depth == 16 and np.allclose(decoded.rgb, image[..., :3], atol=1e-4)


def test_sixteen_bit_to_jpeg_and_webp_is_reported_as_reduced(tmp_path):
    for name in ("x.jpg", "x.webp"):
        report = write_image(rgba_float()[..., :3], tmp_path / name, bit_depth=16)
        assert report["bit_depth"] == 8 and "reduced to 8 bits" in report["notes"][0]


@pytest.mark.parametrize("kwargs, message", [
    ({"fmt": "bmp"}, "unknown output format 'bmp'; choose one of: png, jpeg"),
    ({"quality": 0}, "quality must be from 1 to 100, got 0"),
    ({"quality": 101}, "quality must be from 1 to 100, got 101"),
    ({"quality": "high"}, "quality must be a whole number from 1 to 100, got 'high'"),
    ({"fmt": "jpeg"}, "format jpeg does not match the file name 'x.png'"),
])
def test_bad_format_or_quality_is_a_clear_error(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_image(rgba_float(), tmp_path / "x.png", **kwargs)


def test_webp_size_limit_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="WebP cannot hold an image of 16384x1"):
        write_image(np.zeros((1, 16384, 3), np.float32), tmp_path / "wide.webp")
