"""Tiled inference: tiles cover the image, windows normalise, and tiled == untiled for a real FlashSR."""
import numpy as np
import pytest
import torch

from models import get_spec
from serve.tiling import (
    TilePlan,
    edge_weights,
    pad_to_multiple,
    plan_for,
    receptive_radius,
    spec_radius,
    tile_starts,
    tiled_apply,
)


def random_flashsr(scale=4, **overrides):
    """FlashSR with every weight random (the shipped init zeroes the upsampler, which would hide seams)."""
    torch.manual_seed(1)
    model = get_spec(f"flashsr_x{scale}").build(**overrides).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.upsample[0].weight, std=0.05)
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model


def torch_runner(model):
    def run(batch):
        with torch.inference_mode():
            return model(torch.from_numpy(batch)).numpy()
    return run


def nearest_x2(batch):
    return batch.repeat(2, axis=2).repeat(2, axis=3)


@pytest.mark.parametrize("length,tile,overlap", [(70, 32, 8), (53, 32, 18), (32, 32, 8), (10, 32, 8), (33, 32, 0)])
def test_tile_starts_cover_the_image_with_the_last_tile_flush(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    assert starts[0] == 0 and starts[-1] + size == length
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_window_is_zero_on_cut_margins_and_one_at_image_borders():
    plan = TilePlan(tile=32, overlap=12, blend=4)
    w = edge_weights(32 * 2, 2, cut_before=True, cut_after=False, plan=plan)
    assert np.all(w[: plan.margin * 2] == 0) and w[-1] == 1 and np.all(np.diff(w) >= 0)
    assert np.all(edge_weights(10, 2, False, False, plan) == 1)


@pytest.mark.parametrize("window", ["cosine", "linear"])
@pytest.mark.parametrize("shape", [(1, 3, 70, 53), (2, 3, 17, 40), (1, 3, 5, 5)])
def test_weights_normalise_to_the_exact_result_for_a_pointwise_model(window, shape):
    """With no spatial context every window choice must reproduce the full result: no holes, no seams."""
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    plan = TilePlan(tile=16, overlap=6, blend=4, batch_size=3, window=window)
    out, tiles = tiled_apply(nearest_x2, x, 2, plan)
    np.testing.assert_allclose(out, nearest_x2(x), atol=1e-6)
    assert tiles >= shape[0]


def test_padding_to_the_model_multiple_is_reflected_and_cropped_back():
    seen = []

    def runner(batch):
        seen.append(batch.shape)
        assert batch.shape[2] % 4 == 0 and batch.shape[3] % 4 == 0
        return nearest_x2(batch)

    x = np.random.default_rng(1).random((1, 3, 23, 18), dtype=np.float32)
    out, _ = tiled_apply(runner, x, 2, TilePlan(tile=14, overlap=4, blend=2), pad_multiple=4)
    assert out.shape == (1, 3, 46, 36)
    np.testing.assert_allclose(out, nearest_x2(x), atol=1e-6)
    padded, size = pad_to_multiple(x, 4)
    assert padded.shape[2:] == (24, 20) and size == (23, 18)
    np.testing.assert_array_equal(padded[0, :, 23, :18], x[0, :, 21])  # reflect, not edge copy
    assert len({s[1:] for s in seen}) == 1  # every tile has one shape: batchable, fixed-shape engines work


def test_receptive_radius_counts_the_convs_on_flashsr():
    assert receptive_radius(get_spec("flashsr_x4").build(blocks=2, channels=8)) == 1 + 2 * 2 + 1 + 1
    assert spec_radius("flashsr_x4") == 21


def test_plan_shrinks_the_blend_before_giving_up_exactness():
    assert plan_for(5, tile=256).margin >= 5
    tight = plan_for(5, tile=14, blend=8)
    assert tight.overlap == 13 and tight.margin >= 5 and tight.blend == 3
    assert plan_for(21, tile=16).overlap == 15  # too small a tile: best effort, still valid


def test_tiled_equals_untiled_for_a_small_random_flashsr():
    """70x53, tile 32: overlap = 2 * radius + blend makes every weighted pixel see its full receptive field."""
    model = random_flashsr(scale=4, channels=16, blocks=2)
    radius = receptive_radius(model)
    x = np.random.default_rng(2).random((1, 3, 53, 70), dtype=np.float32)
    full = torch_runner(model)(x)
    calls = []
    plan = TilePlan(tile=32, overlap=2 * radius + 4, blend=4, batch_size=4)
    out, tiles = tiled_apply(torch_runner(model), x, 4, plan, progress=lambda done, total: calls.append((done, total)))
    assert tiles > 4 and calls[-1] == (tiles, tiles)
    assert np.abs(out - full).max() <= 1e-3
    # and the rule is what makes it exact: too little overlap shows seams
    rough, _ = tiled_apply(torch_runner(model), x, 4, TilePlan(tile=32, overlap=4, blend=4))
    assert np.abs(rough - full).max() > np.abs(out - full).max()


def test_plan_for_the_registered_model_is_exact():
    model = random_flashsr(scale=2)  # the full-size flagship: radius 21
    plan = plan_for(spec_radius("flashsr_x2"), tile=64, blend=8)
    assert plan.margin >= receptive_radius(model)
    x = np.random.default_rng(3).random((1, 3, 40, 90), dtype=np.float32)
    out, tiles = tiled_apply(torch_runner(model), x, 2, plan)
    assert tiles == 3  # x starts 0, 14, 26 (stride 64 - 50)
    assert np.abs(out - torch_runner(model)(x)).max() <= 1e-3


@pytest.mark.parametrize("kwargs", [dict(tile=8, overlap=8), dict(tile=16, overlap=4, blend=6),
                                    dict(tile=0), dict(batch_size=0), dict(window="gauss")])
def test_bad_plans_are_rejected(kwargs):
    with pytest.raises(ValueError):
        TilePlan(**kwargs)


def test_runner_returning_the_wrong_scale_is_reported():
    with pytest.raises(ValueError, match="tile runner returned"):
        tiled_apply(nearest_x2, np.zeros((1, 3, 20, 20), np.float32), 4, TilePlan(tile=16, overlap=4, blend=0))


def test_large_tiles_run_one_per_call_so_a_call_stays_within_the_pixel_budget(monkeypatch):
    """#22: four 512 px tiles in one ORT call held 1.3 GB; the batch shrinks to MAX_CALL_PIXELS."""
    import serve.tiling as tiling

    calls = []

    def record(batch):
        calls.append(batch.shape[0])
        return np.repeat(np.repeat(batch, 2, axis=2), 2, axis=3)

    image = np.random.default_rng(0).random((1, 3, 200, 200), dtype=np.float32)
    monkeypatch.setattr(tiling, "MAX_CALL_PIXELS", 64 * 64)
    out, tiles = tiled_apply(record, image, 2, plan_for(4, tile=64, batch_size=4))
    assert tiles > 4 and set(calls) == {1} and sum(calls) == tiles
    calls.clear()
    monkeypatch.setattr(tiling, "MAX_CALL_PIXELS", 2 * 64 * 64)
    again, _ = tiled_apply(record, image, 2, plan_for(4, tile=64, batch_size=4))
    assert max(calls) == 2 and np.array_equal(out, again)  # the batching never changes the result
