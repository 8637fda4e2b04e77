"""FlashSR-MS (models/flashsr_ms.py): the half-resolution stage, its receptive radius, exact tiling, export."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models import get_spec
from models.checkpoint import save_checkpoint
from models.flashsr import FlashSR
from models.flashsr_ms import FlashSRMultiScale
from serve.tiling import onnx_receptive_radius, plan_for, receptive_radius, tile_starts, tiled_apply


def small_ms(perturb=True, strength=True):
    """A tiny FlashSR-MS with every weight random, so the half stage and the strength shifts act."""
    torch.manual_seed(0)
    model = FlashSRMultiScale(scale=2, channels=8, blocks=1, half_blocks=2, half_channels=12, strength=strength)
    if perturb:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_the_half_stage_starts_as_a_no_op():
    """At init the model is FlashSR with the same full-size weights (half_out and the new shifts are zero)."""
    ms = small_ms(perturb=False)
    plain = FlashSR(scale=2, channels=8, blocks=1, strength=True).eval()
    state = {k: v for k, v in ms.state_dict().items() if not k.startswith(("half_", "strength_mlp.2"))}
    plain.load_state_dict(state, strict=False)
    with torch.no_grad():
        torch.nn.init.normal_(ms.upsample[0].weight, std=0.05)
        plain.upsample[0].weight.copy_(ms.upsample[0].weight)
        x = torch.rand(2, 3, 10, 14)
        assert torch.allclose(ms(x), plain(x), atol=1e-6)
        ms.half_out.weight.normal_(std=0.05)
        assert not torch.allclose(ms(x), plain(x), atol=1e-4)


@pytest.mark.parametrize("h, w", [(9, 13), (10, 7), (1, 1)])
def test_odd_sizes_are_padded_inside_and_cropped_back(h, w):
    with torch.no_grad():
        out = small_ms()(torch.rand(1, 3, h, w), strength=torch.tensor([[0.3]]))
    assert out.shape == (1, 3, 2 * h, 2 * w) and torch.isfinite(out).all()


def test_strength_shifts_reach_the_half_blocks():
    model = small_ms()
    with torch.no_grad():
        model.strength_mlp[2].weight[: model.channels * 2].zero_()  # only the half blocks' shifts remain
        model.strength_mlp[2].bias[: model.channels * 2].zero_()
        x = torch.rand(1, 3, 8, 8).expand(2, -1, -1, -1)
        out = model(x, strength=torch.tensor([[0.0], [1.0]]))
    assert (out[0] - out[1]).abs().max() > 1e-4


def test_receptive_radius_bounds_the_true_reach():
    """One input pixel changed: outputs move only within the stated radius, and the radius is more than
    the plain sum of half-kernels (a half-size 3x3 reaches two LR pixels)."""
    model = small_ms(strength=False)
    radius = receptive_radius(model)
    assert radius == model.receptive_radius() == 1 + 2 + 2 * 2 * 2 + 1 + 1 + 2  # head, block, half, tail, up, shuffles
    x = torch.rand(1, 3, 40, 40)
    y = x.clone()
    y[:, :, 20, 20] += 0.5
    with torch.no_grad():
        diff = (model(x) - model(y)).abs().amax(dim=(0, 1))
    rows, cols = torch.nonzero(diff > 0, as_tuple=True)
    reach = max((rows // 2 - 20).abs().max().item(), (cols // 2 - 20).abs().max().item())
    assert 0 < reach <= radius
    assert reach > sum(1 for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] == 3)


def test_tile_starts_stay_on_the_pixel_grid():
    assert all(s % 2 == 0 for s in tile_starts(70, 32, 13, align=2))
    assert tile_starts(70, 32, 13, align=2)[-1] == 38


def test_tiled_equals_untiled_with_the_spec_pad_multiple():
    """Tiles start on even pixels (pad_multiple 2), so the pixel grouping matches the whole-image pass."""
    model = small_ms(strength=False)
    run = lambda batch: model(torch.from_numpy(batch)).detach().numpy()  # noqa: E731
    x = np.random.default_rng(2).random((1, 3, 42, 58), dtype=np.float32)
    with torch.no_grad():
        full = run(x)
        plan = plan_for(receptive_radius(model), tile=48, blend=3)
        assert plan.overlap % 2 == 1  # an odd overlap: an unaligned stride would shift the grid
        out, tiles = tiled_apply(run, x, 2, plan, pad_multiple=2)
    assert tiles > 1 and np.abs(out - full).max() < 1e-4
    assert get_spec("flashsr_real_ms_x4").pad_multiple == 2


def test_registered_model_costs_what_flashsr_costs():
    """5 half-size + 4 full-size blocks: the same multiply-adds per LR pixel as FlashSR's 9 blocks (within
    the 1x1 convs that enter and leave the stage), with more weights."""
    def macs_per_pixel(model):
        total = 0.0
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.Conv2d):
                area = 0.25 if name.startswith("half_") else 1.0
                total += area * m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1]
        return total
    ms, base = get_spec("flashsr_real_ms_x4").build(), get_spec("flashsr_real_x4").build()
    assert 1.0 <= macs_per_pixel(ms) / macs_per_pixel(base) < 1.05
    assert sum(p.numel() for p in ms.parameters()) > 2 * sum(p.numel() for p in base.parameters())


@pytest.mark.slow
def test_onnx_export_stamps_the_radius_and_matches_torch(tmp_path):
    import onnxruntime as ort

    from export.onnx_export import export_onnx

    model = small_ms()
    path = tmp_path / "flashsr_real_ms_x4.safetensors"
    save_checkpoint(path, model, arch="flashsr_ms", args={"scale": 2, "channels": 8, "blocks": 1, "half_blocks": 2,
                                                           "half_channels": 12})
    with pytest.raises(Exception, match="scale"):  # the registered x4 spec refuses an x2 file
        export_onnx("flashsr_real_ms_x4", path, tmp_path / "onnx")
    model4 = FlashSRMultiScale(scale=4, channels=8, blocks=1, half_blocks=2, half_channels=12).eval()
    with torch.no_grad():
        for p in model4.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_checkpoint(path, model4, arch="flashsr_ms", args={"scale": 4, "channels": 8, "blocks": 1, "half_blocks": 2,
                                                            "half_channels": 12})
    onnx_file = export_onnx("flashsr_real_ms_x4", path, tmp_path / "onnx")
    assert onnx_receptive_radius(onnx_file) == model4.receptive_radius()
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).random((2, 3, 14, 18), dtype=np.float32)
    s = np.array([[0.0], [1.0]], np.float32)
    got = session.run(None, {"lr": x, "strength": s})[0]
    with torch.no_grad():
        want = model4(torch.from_numpy(x), strength=torch.from_numpy(s)).numpy()
    assert np.abs(got - want).max() < 1e-4
