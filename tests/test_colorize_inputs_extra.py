"""Issue 6's input requirements not covered by tests/test_colorize.py: 16-bit RGB input, alpha kept
through saving, the default 40 MP limit, and the app tab's own messages (colour input turned grey,
1-pixel and over-limit uploads)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from common.images import DecodedImage, read_image
from models import get_spec, save_checkpoint
from serve.contract import InputError
from tests.conftest import smooth_image


@pytest.fixture(scope="module")
def lab_weights(tmp_path_factory):
    """An untrained (slightly perturbed, so chroma is non-zero) colorize_lab checkpoint."""
    spec = get_spec("colorize_lab")
    torch.manual_seed(0)
    model = spec.build()
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.02)
    path = tmp_path_factory.mktemp("colorize_extra") / "colorize_lab.safetensors"
    save_checkpoint(path, model, arch=spec.arch, args=dict(spec.kwargs))
    yield path
    from serve.runtime import clear_cache

    clear_cache()


def _colorize(image, weights, **kw):
    from serve.colorize import colorize

    return colorize(image, "colorize_lab", "torch-cpu", weights_path=str(weights), **kw)


def test_sixteen_bit_rgb_input_is_accepted_and_stays_sixteen_bit(tmp_path, rng, lab_weights):
    import cv2

    from serve.sr import save_image

    path = tmp_path / "rgb16.png"
    rgb16 = (smooth_image(rng, 40, 48) * 65535).astype(np.uint16)
    assert cv2.imwrite(str(path), rgb16[..., ::-1])
    decoded = read_image(path)
    assert decoded.bit_depth == 16 and not decoded.was_grey
    result = _colorize(decoded, lab_weights)
    assert result.info["converted_from_colour"] and "turned grey" in result.info["note"]
    assert result.image.shape == (40, 48, 3)
    back = cv2.imread(str(save_image(result, tmp_path / "out16.png")), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and back.shape == (40, 48, 3)


def test_alpha_survives_saving(tmp_path, rng, lab_weights):
    from serve.sr import save_image

    grey = (smooth_image(rng, 32, 40)[..., 0] * 255).astype(np.uint8)
    alpha = (rng.random((32, 40)) * 255).astype(np.uint8)
    src = tmp_path / "la.png"
    Image.fromarray(np.stack([grey, alpha], axis=2), mode="LA").save(src)
    result = _colorize(read_image(src), lab_weights)
    assert result.info["alpha_preserved"] and result.image.shape == (32, 40, 4)
    with Image.open(save_image(result, tmp_path / "out.png")) as out:
        assert out.mode == "RGBA"
        assert np.array_equal(np.asarray(out)[..., 3], alpha)


def test_default_limit_refuses_an_enormous_image_before_any_work():
    from serve.colorize import MAX_INPUT_PIXELS, colorize

    side = int(MAX_INPUT_PIXELS ** 0.5) + 1  # just over 40 MP; broadcast, so nothing is allocated
    huge = DecodedImage(np.broadcast_to(np.zeros((1, 1, 3), np.float32), (side, side, 3)), None, True, 8)
    with pytest.raises(InputError, match=r"is 40.01 MP, over the colorization limit of 40.00 MP"):
        colorize(huge, "colorize_lab", "torch-cpu", weights_path="/nonexistent/never-loaded.safetensors")


# ---------------------------------------------------------------- the app tab, called directly

def _tab():
    pytest.importorskip("gradio")
    from ui import colorize_tab

    if not colorize_tab.available_models():
        pytest.skip("no trained colorization model")
    return colorize_tab


@pytest.mark.slow
def test_tab_says_a_colour_input_was_turned_grey(upload_dir, rng):
    tab = _tab()
    colour, grey = upload_dir / "colour.png", upload_dir / "grey.png"
    Image.fromarray((smooth_image(rng, 40, 48) * 255).astype(np.uint8)).save(colour)
    Image.fromarray((smooth_image(rng, 40, 48)[..., 1] * 255).astype(np.uint8)).save(grey)
    _, _, summary, info = tab.colorize_image(str(colour), None, "torch-cpu", progress=None)
    assert "turned grey first" in summary and info["input_was_colour"]
    _, _, summary, info = tab.colorize_image(str(grey), None, "torch-cpu", progress=None)
    assert "turned grey" not in summary and not info["input_was_colour"]


def test_tab_rejects_one_pixel_and_over_limit_uploads(upload_dir, rng, monkeypatch):
    import gradio as gr

    tab = _tab()
    tiny = upload_dir / "one_pixel.png"
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(tiny)
    with pytest.raises(gr.Error, match="one_pixel.png: 1x1 is too small"):
        tab.colorize_image(str(tiny), None, "torch-cpu", progress=None)
    big = upload_dir / "big.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(big)
    real = tab.limits()
    monkeypatch.setattr(tab, "limits", lambda: dataclasses.replace(real, sr_input_pixels=1000))
    with pytest.raises(gr.Error, match=r"big.png: 64x64 is 0.004 MP, over the limit of 0.001 MP"):
        tab.colorize_image(str(big), None, "torch-cpu", progress=None)


def test_tab_keeps_alpha_and_16_bit_in_the_download(upload_dir, rng):
    tab = _tab()
    src = upload_dir / "grey_alpha.png"
    grey = (smooth_image(rng, 40, 48)[..., 0] * 255).astype(np.uint8)
    alpha = (rng.random((40, 48)) * 255).astype(np.uint8)
    Image.fromarray(np.stack([grey, alpha], axis=2), mode="LA").save(src)
    (_, colour_png), download, summary, info = tab.colorize_image(str(src), None, "torch-cpu", progress=None)
    with Image.open(download) as out:
        assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[..., 3], alpha)
    assert "alpha" in summary and Image.open(colour_png).size == (48, 40)
    deep = upload_dir / "grey16.png"
    import cv2
    cv2.imwrite(str(deep), (smooth_image(rng, 40, 48)[..., 0] * 65535).astype(np.uint16))
    _, download, summary, _ = tab.colorize_image(str(deep), None, "torch-cpu", progress=None)
    assert cv2.imread(download, cv2.IMREAD_UNCHANGED).dtype == np.uint16 and "16-bit" in summary
