"""Checkpoint round trip and the clear errors for files that do not fit."""
import json

import pytest
import torch

from models import CheckpointError, get_spec, load_model, model_from_checkpoint, save_checkpoint
from models.flashsr import FlashSR


def _save(path, **kwargs):
    model = FlashSR(**kwargs)
    torch.nn.init.normal_(model.upsample[0].weight, std=0.01)
    save_checkpoint(path, model, arch="flashsr", args=kwargs, meta={"iterations": 7, "metrics": {"Set5": 1.0}})
    return model


def test_round_trip(tmp_path):
    model = _save(tmp_path / "m.safetensors", scale=2, channels=16, blocks=2)
    info = json.loads((tmp_path / "m.json").read_text())
    assert info["arch"] == "flashsr" and info["iterations"] == 7 and len(info["sha256"]) == 64
    loaded = model_from_checkpoint(tmp_path / "m.safetensors")
    x = torch.rand(1, 3, 9, 7)
    assert torch.equal(model.eval()(x), loaded(x))
    assert not loaded.training


def test_wrong_architecture_args_is_a_clear_error(tmp_path):
    _save(tmp_path / "x4.safetensors", scale=4, channels=16, blocks=2)
    with pytest.raises(CheckpointError, match=r"scale=4 \(expected 2\)"):
        load_model("flashsr_x2", tmp_path / "x4.safetensors")
    _save(tmp_path / "small.safetensors", scale=2, channels=16, blocks=2)
    assert load_model("flashsr_x2", tmp_path / "small.safetensors").channels == 16  # own variant: fine
    # Sidecar args rebuild the saved module, so a tampered sidecar is what exposes the mismatch:
    info = json.loads((tmp_path / "small.json").read_text())
    info["args"] = {"scale": 2}
    (tmp_path / "small.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="does not fit FlashSR") as err:
        model_from_checkpoint(tmp_path / "small.safetensors")
    assert "shapes" in str(err.value) and len(str(err.value)) < 600


def test_other_architecture_is_refused(tmp_path):
    _save(tmp_path / "m.safetensors", scale=2, channels=16, blocks=2)
    info = json.loads((tmp_path / "m.json").read_text())
    info["arch"] = "srgan"
    (tmp_path / "m.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="holds a 'srgan' model"):
        load_model("flashsr_x2", tmp_path / "m.safetensors")


@pytest.mark.parametrize("damage", ["missing", "no_sidecar", "garbage", "bad_json"])
def test_damaged_files(tmp_path, damage):
    path = tmp_path / "m.safetensors"
    _save(path, scale=2, channels=8, blocks=1)
    if damage == "missing":
        path.unlink()
    elif damage == "no_sidecar":
        (tmp_path / "m.json").unlink()
    elif damage == "garbage":
        path.write_bytes(b"\x00garbage" * 10)
    elif damage == "bad_json":
        (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(CheckpointError) as err:
        model_from_checkpoint(path)
    assert str(tmp_path) in str(err.value)


def test_shipped_weights_load():
    for name in ("flashsr_x2", "flashsr_x4"):
        spec = get_spec(name)
        if not spec.has_weights():
            pytest.skip(f"{spec.weights_path} not present")
        model = load_model(name)
        assert model.scale == spec.scale


def test_record_metrics_merges_sets_and_keeps_only_named_keys(tmp_path):
    from models.checkpoint import read_sidecar, record_metrics

    path = tmp_path / "m.safetensors"
    _save(path, scale=2, channels=8, blocks=1)  # sidecar starts with metrics {"Set5": 1.0}
    record_metrics(path, [{"set": "Set14", "psnr_y": 30.0, "ssim_y": 0.9, "seconds": 3.0}], ("psnr_y", "ssim_y"))
    assert read_sidecar(path)["metrics"] == {"Set5": 1.0, "Set14": {"psnr_y": 30.0, "ssim_y": 0.9}}
