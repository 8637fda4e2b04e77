"""The colorizers' vividness (colour strength): 1 is exactly the calibrated model, it scales only the
network's own chroma (hints stay where they were), every backend takes it from the graph, and bad values
get a clear message in serve, the tab and Triton."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models import get_spec
from models.colorize_hint import ColorizeHint
from models.colorize_lab import ColorizeLab
from models.hints import encode_hints, rgb_to_ab
from models.io import MAX_VIVIDNESS, VIVIDNESS
from models.lab_color import rgb_to_lab
from serve.contract import InputError
from tests.conftest import perturbed_hint_checkpoint

TINY = {"widths": [8, 16], "head": "classify"}


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A small, randomly perturbed hint model at the shipped model's gain (0.4)."""
    path = tmp_path_factory.mktemp("vivid") / "colorize_hint_cls.safetensors"
    yield perturbed_hint_checkpoint(path, 1, {**TINY, "chroma_gain": 0.4})
    from serve.runtime import clear_cache

    clear_cache()


def _grey(n=1, h=64, w=64):
    return torch.linspace(0.2, 0.8, w).expand(n, 1, h, w).contiguous()


def _ab(rgb: torch.Tensor) -> torch.Tensor:
    return rgb_to_lab(rgb.double())[:, 1:].float()


@pytest.mark.parametrize("make", [lambda: ColorizeLab(widths=(8, 16)), lambda: ColorizeHint(**TINY)])
def test_vividness_one_is_the_model_and_it_scales_the_chroma(make):
    torch.manual_seed(0)
    model = make().eval()
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)
    grey = _grey(2)
    with torch.no_grad():
        plain = model(grey)
        assert torch.equal(model(grey, vividness=torch.ones(2, 1)), plain) if isinstance(model, ColorizeLab) \
            else torch.equal(model(grey, None, None, torch.ones(2, 1)), plain)
        per_image = torch.tensor([[0.0], [2.0]])
        out = model(grey, vividness=per_image)
    ab, ab_plain = _ab(out), _ab(plain)
    assert ab[0].abs().max() < 0.05  # vividness 0: grey
    inside = ((out[1] > 0.01) & (out[1] < 0.99)).all(dim=0).expand(2, -1, -1)  # in gamut: the chroma doubles
    assert inside.float().mean() > 0.5
    assert ab_plain[1].abs().max() > 1.0
    torch.testing.assert_close(ab[1][inside], 2 * ab_plain[1][inside], atol=0.05, rtol=0.02)


def test_hints_stay_put_at_any_vividness():
    torch.manual_seed(0)
    model = ColorizeHint(**TINY).eval()
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)
    grey = _grey()
    blue = (0.125, 0.375, 0.875)
    hint_ab, hint_mask = (torch.from_numpy(a) for a in encode_hints([(20, 20, blue)], 64, 64))
    want = torch.from_numpy(rgb_to_ab(np.array([blue], np.float32))[0]).view(2, 1, 1)
    for vividness in (0.0, 0.25, 1.0, 2.5):
        with torch.no_grad():
            ab = _ab(model(grey, hint_ab, hint_mask, torch.full((1, 1), vividness)))[0]
        assert (ab[:, 19:22, 19:22] - want).abs().max() < 3.0, vividness  # the hint's colour at any vividness


def _colorize(image, weights, backend="torch-cpu", **kw):
    from serve.colorize import colorize

    return colorize(image, "colorize_hint_cls", backend, weights_path=str(weights), **kw)


def _chroma(rgb: np.ndarray) -> float:
    return float((rgb.max(axis=2) - rgb.min(axis=2)).mean())


def test_serve_vividness_and_its_messages(tiny_weights):
    grey = np.tile(np.linspace(0.2, 0.8, 64, dtype=np.float32), (48, 1))
    default = _colorize(grey, tiny_weights)
    assert default.info["vividness"] == 1.0
    assert np.array_equal(_colorize(grey, tiny_weights, vividness=1).image, default.image)
    assert _chroma(_colorize(grey, tiny_weights, vividness=2.0).image) > 1.5 * _chroma(default.image)
    assert _chroma(_colorize(grey, tiny_weights, vividness=0.0).image) < 0.01
    for bad, message in [(float("nan"), "between 0"), (-0.1, "between 0"), (MAX_VIVIDNESS + 0.1, "and 2.5"),
                         ("vivid", "a number"), (True, "a number")]:
        with pytest.raises(InputError, match=f"vividness must be .*{message}"):
            _colorize(grey, tiny_weights, vividness=bad)


def test_a_colorizer_without_the_control_ignores_it():
    spec = get_spec("grey2rgb_mse")
    assert not spec.vividness_input and VIVIDNESS not in spec.io.input_names
    if not spec.has_weights():
        pytest.skip("grey2rgb_mse has no weights")
    from serve.colorize import colorize

    grey = np.tile(np.linspace(0.2, 0.8, 64, dtype=np.float32), (48, 1))
    result = colorize(grey, "grey2rgb_mse", "torch-cpu", vividness=2.0)
    assert result.info["vividness"] is None
    assert np.array_equal(result.image, colorize(grey, "grey2rgb_mse", "torch-cpu").image)


def test_export_takes_vividness(tmp_path, tiny_weights):
    from export.onnx_export import export_onnx, read_onnx_record

    record = read_onnx_record(export_onnx("colorize_hint_cls", tiny_weights, tmp_path))
    assert [t["name"] for t in record["inputs"]] == ["grey", "hint_ab", "hint_mask", VIVIDNESS]
    assert max(record["parity"]["max_abs_error"].values()) <= 1e-4
    for name in ("colorize_lab", "colorize_hint_cls", "colorize_hint_l1"):
        assert get_spec(name).io.input_names[-1] == VIVIDNESS
        assert get_spec(name).io.inputs[-1].value_range == (0.0, MAX_VIVIDNESS)


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_runtimes_take_vividness(tiny_weights, backend):
    pytest.importorskip("openvino" if backend == "openvino" else "onnxruntime")
    grey = np.tile(np.linspace(0.2, 0.8, 64, dtype=np.float32), (48, 1))
    hints = [(30, 20, "#2050ff")]
    for vividness in (0.3, 1.7):
        want = _colorize(grey, tiny_weights, hints=hints, vividness=vividness).image
        got = _colorize(grey, tiny_weights, backend, hints=hints, vividness=vividness)
        assert got.info["vividness"] == vividness
        assert np.abs(got.image - want).max() < 2e-3


def test_a_backend_called_without_vividness_gets_the_default_and_checks_it(tiny_weights):
    from serve.runtime import get_backend

    runner = get_backend("colorize_hint_cls", "torch-cpu", weights_path=str(tiny_weights))
    grey = np.random.default_rng(0).random((1, 1, 32, 32), dtype=np.float32)
    plain = runner.run({"grey": grey})["rgb"]
    ones = runner.run({"grey": grey, VIVIDNESS: np.ones((1, 1), np.float32)})["rgb"]
    assert np.array_equal(plain, ones)
    for bad, message in [(np.full((1, 1), 5.0), "must be between 0 and 2.5"),
                         (np.full((1, 1), np.nan), "must be between 0 and 2.5"),
                         (np.ones((2, 1)), "must share one batch size")]:  # the backends' own check
        with pytest.raises(InputError, match=message):
            runner.run({"grey": grey, VIVIDNESS: bad.astype(np.float32)})


def test_the_tab_takes_vividness_and_refuses_bad_values(upload_dir):
    import gradio as gr
    from PIL import Image

    from ui import colorize_tab

    if "colorize_hint_cls" not in colorize_tab.available_models():
        pytest.skip("colorize_hint_cls has no weights")
    path = upload_dir / "grey.png"
    Image.fromarray(np.tile(np.linspace(40, 220, 96).astype(np.uint8), (64, 1))).save(path)

    def run(vividness):
        (_, colour), _, summary, info = colorize_tab.colorize_image(str(path), "colorize_hint_cls", "onnx", "auto",
                                                                    [], vividness, progress=None)
        return np.asarray(Image.open(colour), np.float32) / 255, summary, info

    default, summary, info = run(None)
    assert info["vividness"] == 1.0 and "Vividness" not in summary
    vivid, summary, info = run("2")  # API clients may send numbers as text
    assert info["vividness"] == 2.0 and "Vividness 2." in summary
    assert _chroma(vivid) > 1.5 * _chroma(default)
    (_, _), _, summary, _ = colorize_tab.colorize_image(str(path), "colorize_hint_cls", "onnx", "auto",
                                                        [[5, 5, "#ff0000"]], 2.0, progress=None)
    assert "where your hints reach, their colour wins" in summary  # hints dominate: the summary says so
    for bad in ("lots", float("nan"), 3.0, -1):
        with pytest.raises(gr.Error, match="'vividness' must be"):
            run(bad)
