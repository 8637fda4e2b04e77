"""The bookkeeping every training script shares (train/loop.py), on a tiny model."""
from __future__ import annotations

import csv
import json

import pytest
import torch
from torch import nn

from train.loop import EMA, RunRecorder, cosine_lr, open_run, spec_for_task_or_exit


class Args:
    def __init__(self, run_dir, fresh=False):
        self.run_dir, self.fresh, self.init_from = run_dir, fresh, None


def tiny():
    torch.manual_seed(0)
    model = nn.Conv2d(3, 3, 3, padding=1)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def recorder(run_dir, model, optimizer, ema, state, step, **kw):
    return RunRecorder(run_dir, ["step", "loss", "val_psnr"], model=model, optimizer=optimizer, ema=ema,
                       arch="toy", model_args={"k": 3}, meta={"model": "toy", "task": "sr"}, state=state, step=step,
                       budget_s=0, **kw)


def test_recorder_logs_rows_and_resumes_scores_seconds_and_extra(tmp_path):
    model, opt = tiny()
    ema = EMA(model, 0.9)
    run_dir, state, step = open_run(Args(tmp_path / "run"), "toy", model, opt, ema, "cpu")
    assert state is None and step == 0
    saved_extra = []

    def on_save(step):
        saved_extra.append(step)
        return {"discriminator": {"w": torch.ones(2)}}

    run = recorder(run_dir, model, opt, ema, state, step, on_save=on_save)
    run.record(5, {"loss": 0.5})
    run.record(10, {"loss": 0.25}, {"val_psnr": 30.12345}, "checked")
    run.save(10)
    assert saved_extra == [10]

    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert [r["step"] for r in rows] == ["5", "10"]
    assert rows[0]["val_psnr"] == "" and float(rows[1]["val_psnr"]) == pytest.approx(30.1235, abs=1e-3)
    assert all(float(r["steps_per_s"]) > 0 and float(r["seconds"]) >= 0 for r in rows)
    sidecar = json.loads((run_dir / "model.json").read_text())
    assert sidecar["iterations"] == 10 and sidecar["val_psnr"] == 30.123 and sidecar["args"] == {"k": 3}

    # A new process resumes: the step, the optimizer, the seconds so far and the last scores come back.
    model2, opt2 = tiny()
    ema2 = EMA(model2, 0.9)
    run_dir, state, step = open_run(Args(tmp_path / "run"), "toy", model2, opt2, ema2, "cpu")
    assert step == 10 and torch.equal(state["extra"]["discriminator"]["w"], torch.ones(2))
    resumed = recorder(run_dir, model2, opt2, ema2, state, step)
    assert resumed.scores == {"val_psnr": pytest.approx(30.12345)}
    assert resumed.seconds >= state["extra"]["seconds"]
    resumed.finish(12, 100, tmp_path / "weights" / "toy.safetensors", publish=True)
    assert json.loads((tmp_path / "weights" / "toy.json").read_text())["iterations"] == 12
    assert len(list(csv.DictReader(open(run_dir / "metrics.csv")))) == 2  # resuming appends, no new header


def test_fresh_run_forgets_the_old_state(tmp_path):
    model, opt = tiny()
    run_dir, _, _ = open_run(Args(tmp_path / "run"), "toy", model, opt, None, "cpu")
    recorder(run_dir, model, opt, None, None, 0).save(7)
    _, state, step = open_run(Args(tmp_path / "run", fresh=True), "toy", model, opt, None, "cpu")
    assert state is None and step == 0


def test_cosine_lr_warms_up_then_anneals_to_the_floor():
    assert cosine_lr(0, 0.0, warmup=10) == pytest.approx(0.1)
    assert cosine_lr(10, 0.0, warmup=10) == pytest.approx(1.0)
    assert cosine_lr(50, 0.5, warmup=10) == pytest.approx(0.505)
    assert cosine_lr(99, 1.0, warmup=10) == pytest.approx(0.01)


@pytest.mark.parametrize("task,name,scale,message", [
    ("sr", "nope", None, "unknown model 'nope'"),
    ("sr", "colorize_lab", None, "is a colorize model; train it with train.colorize"),
    ("sr", "swift_srgan_x4", 2, "is x4; --scale 2 does not apply"),
    ("interpolate", "flashsr_x4", None, "is a sr model"),
])
def test_wrong_model_for_the_script_exits_with_a_message(task, name, scale, message):
    with pytest.raises(SystemExit, match=message):
        spec_for_task_or_exit(task, name, scale)


def test_model_family_with_scale_resolves():
    assert spec_for_task_or_exit("sr", "swift_srgan", 2).name == "swift_srgan_x2"


def test_growing_a_narrow_model_into_a_wider_one_keeps_its_function(tmp_path):
    """--init-from --grow: the wider net starts as the narrow one (flows and RGB outputs unchanged)."""
    from models import save_checkpoint
    from models.flowinterp import FlowInterp
    from train.loop import grown_tensor, init_from

    torch.manual_seed(0)
    narrow = FlowInterp(channels=(16, 12, 8), refine_channels=8).eval()
    for p in narrow.parameters():  # the zero-initialised output layers would hide a wrong embedding
        p.data.add_(0.05 * torch.randn_like(p))
    path = tmp_path / "narrow.safetensors"
    save_checkpoint(path, narrow, arch="flowinterp", args={"channels": [16, 12, 8], "refine_channels": 8})
    wide = FlowInterp(channels=(32, 24, 16), refine_channels=16).eval()
    assert init_from(wide, path, grow=True) == len(narrow.state_dict())
    x0, x1, t = torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 48), torch.full((1, 1, 1, 1), 0.3)
    with torch.no_grad():
        assert torch.allclose(wide(x0, x1, t), narrow(x0, x1, t), atol=1e-4)
    assert grown_tensor(torch.ones(4, 2), torch.zeros(3, 2)) is None  # does not fit: left alone
    grown = grown_tensor(torch.ones(2, 2), torch.full((3, 4), 7.0))
    assert grown[:2, :2].eq(1).all() and grown[:2, 2:].eq(0).all() and grown[2].eq(7).all()
