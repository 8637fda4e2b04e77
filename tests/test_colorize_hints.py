"""Colour hints and video colorization: encoding, validation messages, zero hints == automatic, the
warm start, export parity with the hint inputs, chroma carried along a clip, and scene-cut re-anchoring."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models import get_spec
from models.colorize_hint import (
    ColorizeHint,
    ab_bins,
    propagate_hints,
    spread_hints,
    texture_weights,
    warm_start_from_lab,
)
from models.colorize_lab import AB_RANGE, ColorizeLab
from models.hints import encode_hints, rgb_to_ab, truth_hints
from serve.colorize_hints import MAX_HINTS, check_hints, parse_colour
from serve.contract import InputError
from tests.conftest import perturbed_hint_checkpoint

TINY = {"widths": [8, 16], "head": "classify"}


@pytest.fixture(scope="module")
def tiny_hint_weights(tmp_path_factory):
    """A small, randomly perturbed classification-head hint model (chroma is non-zero, hints matter)."""
    yield perturbed_hint_checkpoint(tmp_path_factory.mktemp("hint_weights") / "colorize_hint_cls.safetensors", 0, TINY)
    from serve.runtime import clear_cache

    clear_cache()


# ---------------------------------------------------------------- encoding and validation

def test_encode_hints_paints_the_chroma_at_the_scaled_position():
    red = (1.0, 0.0, 0.0)
    hint_ab, mask = encode_hints([(100, 50, red)], 40, 60, source_hw=(80, 200), patch=3)
    ys, xs = np.nonzero(mask[0, 0])
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (24, 26, 29, 31)  # (100.5*60/200, 50.5*40/80) = (30, 25)
    want = rgb_to_ab(np.array([red])) / AB_RANGE
    assert np.allclose(hint_ab[0, :, 25, 30], want[0], atol=1e-5) and want[0, 0] > 0.5  # red: large +a
    assert not hint_ab[0, :, mask[0, 0] == 0].any()
    none_ab, none_mask = encode_hints([], 8, 8)
    assert not none_ab.any() and not none_mask.any()


def test_truth_hints_are_reproducible_and_inside():
    rgb = np.random.default_rng(1).random((30, 40, 3), dtype=np.float32)
    a, b = truth_hints(rgb, 5, seed=3), truth_hints(rgb, 5, seed=3)
    assert a == b and len(a) == 5 and all(2 <= x < 38 and 2 <= y < 28 for x, y, _ in a)


@pytest.mark.parametrize("colour, want", [("#ff8000", (1.0, 128 / 255, 0.0)), ("#fff", (1.0, 1.0, 1.0)),
                                          ("rgba(255, 0, 0, 0.5)", (1.0, 0.0, 0.0)), ([0, 255, 0], (0.0, 1.0, 0.0))])
def test_colour_formats(colour, want):
    assert np.allclose(parse_colour(colour), want)


@pytest.mark.parametrize("hints, message", [
    ([[100, 5, "#ff0000"]], "outside the 100x50 image"),
    ([[-1, 5, "#ff0000"]], "outside"),
    ([[1, 5, [300, 0, 0]]], "out of range"),
    ([[1, 5, [-1, 0, 0]]], "out of range"),
    ([[1, 5, "#zzzzzz"]], "is not a colour"),
    ([[1, float("nan"), "#ff0000"]], "finite number"),
    ([[1, 5]], "must be [x, y, colour]"),
    ("red", "list of [x, y, colour]"),
    ([[1, 1, "#ff0000"]] * (MAX_HINTS + 1), "too many"),
])
def test_bad_hints_get_clear_messages(hints, message):
    with pytest.raises(InputError, match=None) as info:
        check_hints(hints, 100, 50)
    assert message in str(info.value)


def test_good_hints_pass():
    assert check_hints(None, 10, 10) == [] and check_hints([], 10, 10) == []
    assert check_hints([{"x": 9.5, "y": 0, "colour": "#000000"}], 10, 10) == [(9.5, 0.0, (0.0, 0.0, 0.0))]


# ---------------------------------------------------------------- model

def test_bins_and_contract():
    bins = ab_bins()
    assert 200 < bins.shape[0] < 320 and bins.abs().max() <= AB_RANGE
    spec = get_spec("colorize_hint_cls")
    assert spec.io.input_names == ("grey", "hint_ab", "hint_mask", "vividness") and spec.io.output_names == ("rgb",)


def test_propagation_is_zero_without_hints_and_exact_at_a_hint():
    residual, mask = torch.zeros(1, 2, 16, 24), torch.zeros(1, 1, 16, 24)
    assert not propagate_hints(residual, mask).any()
    residual[0, :, 5, 7], mask[0, 0, 5, 7] = torch.tensor([30.0, -20.0]), 1.0
    out = propagate_hints(residual, mask)
    assert torch.allclose(out[0, :, 5, 7], torch.tensor([30.0, -20.0]), atol=3.0)
    assert 0 < out[0, 0, 15, 23] < out[0, 0, 5, 9] < 30.0  # fades with distance, same sign


def test_the_edge_aware_spread_is_zero_without_hints_and_stops_at_lightness_edges():
    lightness = torch.full((1, 1, 16, 24), 0.2)
    lightness[..., 12:] = 0.8  # a dark object left, a light one right
    residual, mask = torch.zeros(1, 2, 16, 24), torch.zeros(1, 1, 16, 24)
    assert not spread_hints(residual, mask, lightness).any()
    residual[0, :, 8, 2], mask[0, 0, 8, 2] = torch.tensor([30.0, 10.0]), 1.0  # far left
    residual[0, :, 8, 21], mask[0, 0, 8, 21] = torch.tensor([-30.0, -10.0]), 1.0  # far right
    out = spread_hints(residual, mask, lightness)
    assert torch.allclose(out[0, :, 8, 2], torch.tensor([30.0, 10.0]), atol=1.0)
    # next to the edge each side keeps its own object's hint; the luminance-blind pyramid blends them there
    assert out[0, 0, 8, 11] > 25.0 and out[0, 0, 8, 12] < -25.0
    blind = propagate_hints(residual, mask)
    assert abs(blind[0, 0, 8, 11]) < 20.0 and abs(blind[0, 0, 8, 12]) < 20.0


def test_the_texture_guide_keeps_a_hint_on_its_own_texture_at_equal_lightness():
    """A smooth half (sky) and a textured half (leaves) of the same mean lightness: lightness alone
    cannot tell them apart, so its spread blends the two hints at the seam; with the texture guide
    each half keeps its own hint. Texture is measured about each cell's mean (exact in fp16 too)."""
    grey = torch.full((1, 1, 64, 96), 0.5)
    checker = (torch.arange(64).view(-1, 1) + torch.arange(96).view(1, -1)) % 2 * 2.0 - 1.0
    grey[..., 48:] += 0.1 * checker[:, 48:]  # textured right half, same 4x4-cell means
    lightness = torch.nn.functional.avg_pool2d(grey, 4)
    texture = texture_weights(grey, lightness)
    assert texture.shape == (1, 3, 16, 24) and torch.allclose(texture.sum(1), torch.ones(1, 16, 24))
    assert texture[0, 0, :, :12].min() == 1.0 and texture[0, 2, :, 12:].min() == 1.0  # smooth / textured ends
    assert torch.equal(texture_weights(grey.half(), lightness.half()).float(), texture)
    residual, mask = torch.zeros(1, 2, 16, 24), torch.zeros(1, 1, 16, 24)
    residual[0, :, 8, 2], mask[0, 0, 8, 2] = torch.tensor([30.0, 10.0]), 1.0  # in the smooth half
    residual[0, :, 8, 21], mask[0, 0, 8, 21] = torch.tensor([-30.0, -10.0]), 1.0  # in the textured half
    guided = spread_hints(residual, mask, lightness, texture=texture, texture_bins=3)
    assert guided[0, 0, 8, 11] > 25.0 and guided[0, 0, 8, 12] < -25.0
    blind = spread_hints(residual, mask, lightness)
    assert abs(blind[0, 0, 8, 11]) < 20.0 and abs(blind[0, 0, 8, 12]) < 20.0
    assert not spread_hints(residual * 0, mask * 0, lightness, texture=texture, texture_bins=3).any()


@pytest.mark.parametrize("hint_bins", [0, 9])
def test_hinted_share_scales_the_network_only_on_images_with_hints(hint_bins):
    torch.manual_seed(3)
    full, shared = (ColorizeHint(widths=(8, 16), hint_bins=hint_bins, hinted_share=s).eval() for s in (1.0, 0.25))
    for p in full.parameters():
        p.data.add_(torch.randn_like(p) * 0.3)
    shared.load_state_dict(full.state_dict())
    grey = torch.rand(2, 1, 32, 48)
    hint_ab, mask = torch.zeros(2, 2, 32, 48), torch.zeros(2, 1, 32, 48)
    with torch.no_grad():
        assert torch.equal(full.predict_ab(grey), shared.predict_ab(grey))  # automatic mode unchanged
        hint_ab[1, :, 10:15, 10:15], mask[1, :, 10:15, 10:15] = 0.5, 1.0  # image 1 has a hint, image 0 none
        a, b = full.predict_ab(grey, hint_ab, mask), shared.predict_ab(grey, hint_ab, mask)
    assert torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])


@pytest.mark.parametrize("head", ["regress", "classify"])
def test_zero_hints_is_automatic_mode(head):
    torch.manual_seed(1)
    model = ColorizeHint(widths=(8, 16), head=head).eval()
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)
    grey = torch.rand(2, 1, 32, 48)
    zeros = torch.zeros(2, 2, 32, 48), torch.zeros(2, 1, 32, 48)
    with torch.no_grad():
        auto = model.predict_ab(grey)
        assert torch.equal(model.predict_ab(grey, *zeros), auto)
        hint_ab, mask = zeros[0].clone(), zeros[1].clone()
        hint_ab[:, :, 10:15, 10:15], mask[:, :, 10:15, 10:15] = 0.5, 1.0
        hinted = model.predict_ab(grey, hint_ab, mask)
    assert (hinted - auto).abs().max() > 1.0  # hints change the colours
    assert torch.allclose(hinted[:, :, 12, 12], torch.full((2, 2), 0.5 * AB_RANGE), atol=12.0)


@pytest.mark.parametrize("head", ["regress", "classify"])
def test_the_inference_head_equals_the_training_decode(head):
    """head_ab (softmax over the last axis, 1/T folded into the weights) is decode(logits) rearranged."""
    torch.manual_seed(2)
    model = ColorizeHint(widths=(8, 16), head=head).eval()
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.3)
    grey, hint_ab, mask = torch.rand(2, 1, 20, 36), torch.rand(2, 2, 20, 36) - 0.5, (torch.rand(2, 1, 20, 36) > 0.9).float()
    with torch.no_grad():
        x = model.trunk(grey, hint_ab, mask)
        want = model.decode(model.logits_or_ab(grey, hint_ab, mask))
        got = model.head_ab(x)
    assert got.shape == want.shape == (2, 2, 5, 9) and want.abs().max() > 1.0
    assert torch.allclose(got, want, atol=0.02)  # Lab units (of +-110): float rounding of peaked softmaxes


def test_the_hinted_output_loss_scores_the_output_of_hinted_images_only():
    """train.colorize --hinted-weight: L1 of hinted_ab(decode(logits)) (= the model's own output) against
    the truth, on images with hints; images without hints add nothing and get no gradient."""
    from train.colorize_losses import hinted_output_loss

    torch.manual_seed(4)
    model = ColorizeHint(widths=(8, 16), head="classify", chroma_gain=0.5, hinted_share=0.5)
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.3)
    grey, truth = torch.rand(2, 1, 32, 48), (torch.rand(2, 2, 32, 48) - 0.5) * 60
    hint_ab, mask = torch.zeros(2, 2, 32, 48), torch.zeros(2, 1, 32, 48)
    hint_ab[1, :, 10:15, 10:15], mask[1, :, 10:15, 10:15] = 0.3, 1.0  # only image 1 has hints
    logits = model.logits_or_ab(grey, hint_ab, mask)
    logits.retain_grad()
    loss = hinted_output_loss(model, logits, grey, (hint_ab, mask), truth)
    with torch.no_grad():
        out = model.predict_ab(grey, hint_ab, mask, model.chroma_gain)
    want = ((out[1] - truth[1]).abs() / AB_RANGE).mean()
    assert abs(loss.item() - want.item()) < 1e-3  # the inference path's output (head_ab vs decode: rounding)
    loss.backward()
    assert logits.grad[0].abs().max() == 0 and logits.grad[1].abs().max() > 0
    none = hinted_output_loss(model, logits.detach(), grey, (torch.zeros_like(hint_ab), torch.zeros_like(mask)), truth)
    assert float(none) == 0.0


def test_warm_start_reproduces_colorize_lab():
    torch.manual_seed(2)
    lab = ColorizeLab(widths=(8, 16), chroma_gain=0.7)
    for p in lab.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)
    hint = ColorizeHint(widths=(8, 16), chroma_gain=0.7, head="regress")
    assert warm_start_from_lab(hint, lab.state_dict()) == len(lab.state_dict())
    grey = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        got = hint.eval()(grey, torch.zeros(1, 2, 32, 32), torch.zeros(1, 1, 32, 32))
        assert torch.allclose(got, lab.eval()(grey), atol=1e-6)


def test_export_parity_with_hint_inputs(tmp_path, tiny_hint_weights):
    from export.onnx_export import export_onnx, read_onnx_record

    path = export_onnx("colorize_hint_cls", tiny_hint_weights, tmp_path)
    record = read_onnx_record(path)
    assert [t["name"] for t in record["inputs"]] == ["grey", "hint_ab", "hint_mask", "vividness"]
    assert max(record["parity"]["max_abs_error"].values()) <= 1e-4


# ---------------------------------------------------------------- serving

def _colorize(image, weights, **kw):
    from serve.colorize import colorize

    return colorize(image, "colorize_hint_cls", "torch-cpu", weights_path=str(weights), **kw)


def test_serve_hints(tiny_hint_weights):
    grey = np.tile(np.linspace(0.2, 0.8, 64, dtype=np.float32), (48, 1))
    auto = _colorize(grey, tiny_hint_weights)
    assert np.array_equal(_colorize(grey, tiny_hint_weights, hints=[]).image, auto.image)
    blue = _colorize(grey, tiny_hint_weights, hints=[(30, 20, "#2050ff")])
    assert blue.info["hints"] == 1
    assert blue.image[20, 30, 2] > auto.image[20, 30, 2] + 0.05  # bluer where the hint is
    with pytest.raises(InputError, match="outside"):
        _colorize(grey, tiny_hint_weights, hints=[(64, 0, "#ffffff")])
    colour = np.dstack([grey, grey * 0.5, grey])
    note = _colorize(colour, tiny_hint_weights, hints=[(1, 1, "#ff0000")]).info["note"]
    assert "turned grey" in note and "hints" in note


def test_hints_refused_by_a_model_without_hint_inputs():
    from serve.colorize import colorize

    with pytest.raises(InputError, match="takes no colour hints"):
        colorize(np.zeros((32, 32), np.float32), "colorize_lab", "torch-cpu", hints=[(1, 1, "#ff0000")],
                 weights_path="/nonexistent.safetensors")


# ---------------------------------------------------------------- video

class ShiftFlow:
    """The true flow of a clip that moves right by `dx` px a frame (F_t->t-1 = -dx)."""

    def __init__(self, dx: float):
        self.dx = dx

    def __call__(self, grey_prev, grey_cur):
        h, w = grey_cur.shape
        flow = torch.zeros(1, 2, h, w)
        flow[:, 0] = -self.dx
        return flow


def _moving_clip(frames: int = 5, dx: int = 3):
    rng = np.random.default_rng(0)
    base = np.clip(rng.random((64, 160), dtype=np.float32) * 0.3 + np.linspace(0.2, 0.7, 160), 0, 1)
    base = torch.nn.functional.avg_pool2d(torch.from_numpy(base)[None, None], 5, 1, 2)[0, 0].numpy()
    return [np.ascontiguousarray(np.roll(base, dx * t, axis=1)[:, 16:144]) for t in range(frames)]


def test_video_chroma_follows_the_motion(tiny_hint_weights):
    from serve.colorize_video import colorize_frames

    clip = _moving_clip()
    kw = {"model_name": "colorize_hint_cls", "backend": "torch-cpu", "weights_path": str(tiny_hint_weights),
          "flow": ShiftFlow(3)}
    _, per_frame = colorize_frames(clip, per_frame=True, **kw)
    _, carried = colorize_frames(clip, **kw)
    assert carried["keyframes"] == [0] and per_frame["flicker"] > 0
    assert carried["flicker"] < 0.5 * per_frame["flicker"]
    frames, _ = colorize_frames(clip, hints=[(60, 30, "#ff2020")], **kw)
    assert frames[3][30, 69, 0] > frames[3][30, 69, 1] + 0.1  # the red hint moved 9 px right with the content
    from serve.colorize_video import move_hints

    flow = ShiftFlow(3)(clip[0], clip[1])
    assert move_hints([(60, 30, "c"), (126, 5, "gone")], flow) == [(63.0, 30.0, "c")]


def test_video_re_anchors_at_a_scene_cut(tiny_hint_weights):
    from serve.colorize_video import colorize_frames

    clip = _moving_clip(3) + [np.full((64, 128), 0.95, np.float32) - f * 0.5 for f in _moving_clip(2)]
    kw = {"model_name": "colorize_hint_cls", "backend": "torch-cpu", "weights_path": str(tiny_hint_weights),
          "flow": ShiftFlow(3)}
    carried, info = colorize_frames(clip, **kw)
    fresh, _ = colorize_frames(clip[3:], **kw)
    assert info["keyframes"] == [0, 3]
    assert np.allclose(carried[3], fresh[0], atol=1e-5)  # the cut frame is coloured anew, nothing carried over


def test_the_video_cli_writes_every_frame_and_refuses_bad_arguments(tmp_path, capsys):
    """The CLI once closed its writer without flushing the encoder: 3 frames in, an empty file out."""
    from PIL import Image

    from serve.colorize_video import main
    from serve.video_io import read_frames

    if not get_spec("colorize_hint_cls").has_weights():
        pytest.skip("colorize_hint_cls has no weights")
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(_moving_clip(3)):
        Image.fromarray((frame * 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    assert main([str(folder), "--out", str(tmp_path / "c.mp4"), "--fps", "10"]) == 0
    assert len(list(read_frames(tmp_path / "c.mp4"))) == 3
    for args, message in [(["--out", str(tmp_path / "c.avi")], "must be an .mp4"),
                          (["--out", str(tmp_path / "d.mp4"), "--fps", "nan"], "--fps must be"),
                          (["--out", str(tmp_path / "d.mp4"), "--model", "flashsr_x2"], "not colorization"),
                          (["--out", str(tmp_path / "d.mp4"), "--model", "colorize_lab", "--hint", "1,1,#ff0000"],
                           "takes no colour hints")]:
        try:
            code = main([str(folder), *args])
        except SystemExit as exc:  # argparse's own refusals
            code = exc.code
        assert code == 2 and message in capsys.readouterr().err, args
    assert not (tmp_path / "d.mp4").exists()


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_runtimes_take_the_hint_inputs(tiny_hint_weights, backend):
    pytest.importorskip("openvino" if backend == "openvino" else "onnxruntime")
    grey = np.tile(np.linspace(0.2, 0.8, 64, dtype=np.float32), (48, 1))
    hints = [(30, 20, "#2050ff"), (5, 40, [200, 40, 40])]
    want = _colorize(grey, tiny_hint_weights, hints=hints).image
    from serve.colorize import colorize

    got = colorize(grey, "colorize_hint_cls", backend, weights_path=str(tiny_hint_weights), hints=hints)
    assert got.info["hints"] == 2
    assert np.abs(got.image - want).max() < 2e-3
