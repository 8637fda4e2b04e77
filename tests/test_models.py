"""Architectures and the registry: shapes, sizes, dropout masks, name resolution, the CLI."""
import json
import subprocess
import sys

import pytest
import torch

from models import REGISTRY, get_spec, resolve_name
from models.flashsr import FlashSR


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_model_builds_and_maps_shapes(name):
    spec = get_spec(name)
    model = spec.build().eval()
    x = torch.rand(2, spec.in_channels, 11, 17)
    args = (x, x.flip(-1), torch.full((2, 1, 1, 1), 0.5)) if spec.task == "interpolate" else (x,)  # frames + t
    with torch.no_grad():
        y = model(x[:, None])[:, 0] if spec.task == "vsr" else model(*args)  # video SR: a one-frame clip
    assert y.shape == (2, spec.out_channels, 11 * spec.scale, 17 * spec.scale)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("scale", [2, 4])
def test_flagship_size_in_target_range(scale):
    params = sum(p.numel() for p in FlashSR(scale=scale).parameters())
    assert 300_000 <= params <= 800_000


def test_untrained_flagship_is_bilinear_upscale():
    """The zero-initialised tail makes the skip path exact at init: training starts from bilinear."""
    model = FlashSR(scale=2).eval()
    x = torch.rand(1, 3, 8, 8)
    expected = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(model(x), expected, atol=1e-6)


def test_dropout_masks_are_explicit_and_deterministic():
    torch.manual_seed(0)
    model = FlashSR(scale=2, channels=16, blocks=2, dropout=0.5)
    torch.nn.init.normal_(model.upsample[0].weight, std=0.1)
    model.eval()
    x = torch.rand(1, 3, 8, 8)
    ones = torch.ones(1, model.mask_channels)
    assert torch.allclose(model(x, ones), model(x))  # all-keep mask == deterministic eval
    masks = (torch.rand(3, model.mask_channels) > 0.5).float() * 2
    a = model(x.expand(3, -1, -1, -1), masks)
    b = model(x.expand(3, -1, -1, -1), masks)
    assert torch.equal(a, b)
    assert not torch.allclose(a[0], a[1])  # different masks, different samples
    model.train()
    assert not torch.allclose(model(x), model(x))  # stochastic in train mode


def test_resolve_name():
    assert resolve_name("flashsr", 4).name == "flashsr_x4"
    assert resolve_name("flashsr_x2").scale == 2
    with pytest.raises(ValueError, match="no x3"):
        resolve_name("flashsr", 3)
    with pytest.raises(ValueError, match="--scale 2 does not apply"):
        resolve_name("flashsr_x4", 2)
    with pytest.raises(KeyError, match="unknown model"):
        resolve_name("nope")


@pytest.mark.slow
def test_models_cli_json():
    out = subprocess.run([sys.executable, "-m", "models", "--json"], capture_output=True, text=True, check=True)
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert {r["name"] for r in records} == set(REGISTRY)
    for r in records:
        assert set(r) == {"name", "task", "scale", "params", "weights", "metrics"}
        assert r["task"] in ("sr", "colorize", "interpolate", "vsr") and r["params"] > 0
