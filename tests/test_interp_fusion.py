"""Interpolation fused with DIS flow (serve/interp_fusion.py, issue #20): the rule, the runner wrapper, names."""
import cv2
import numpy as np
import pytest

from models.io import FRAME0, FRAME1, FRAME_OUT, TIMESTEP
from serve import interp_fusion
from serve.interp_fusion import FusedInterpolator, fuse_frame, pair_flows


def _pan(shift, size=64, seed=0):
    """Three frames of one smooth random scene panned by `shift` px per frame: (frame0, truth at t=0.5, frame1)."""
    rng = np.random.default_rng(seed)
    scene = cv2.resize(rng.random((12, 12, 3), dtype=np.float32), (size + 16 + 4 * shift, size + 16),
                       interpolation=cv2.INTER_CUBIC)
    scene = np.clip(scene, 0, 1)
    return tuple(np.ascontiguousarray(scene[8:8 + size, 8 + k * shift: 8 + k * shift + size]) for k in (0, 1, 2))


def _inner(a, b, p):
    return np.abs(a - b)[p:-p, p:-p].mean()


def test_where_the_flow_is_right_the_fused_frame_follows_it():
    """A 2-px pan: the cross-fade (standing in for a poor model) ghosts; the fused frame is near the truth."""
    f0, truth, f1 = _pan(2)
    blend = 0.5 * f0 + 0.5 * f1
    fused = fuse_frame(blend, f0, f1, 0.5, pair_flows(f0, f1))
    assert _inner(fused, truth, 8) < 0.35 * _inner(blend, truth, 8)


def test_the_dis_share_falls_where_its_two_warps_disagree():
    f0, _, f1 = _pan(1)
    agree = interp_fusion.dis_weight(f0, f0)
    disagree = interp_fusion.dis_weight(f0, 1.0 - f0)
    assert np.allclose(agree, interp_fusion.GAIN) and (disagree < agree).all()
    assert float(interp_fusion.dis_weight(f0, f1).mean()) > float(disagree.mean())


class _Blend:
    """A backend runner stand-in: the cross-fade at t."""

    def run(self, feeds):
        t = feeds[TIMESTEP]
        return {FRAME_OUT: (1 - t) * feeds[FRAME0] + t * feeds[FRAME1]}

    def describe(self):
        return {"backend": "blend"}


def test_the_wrapper_computes_the_flows_once_per_pair(monkeypatch):
    calls = []
    original = interp_fusion.pair_flows
    monkeypatch.setattr(interp_fusion, "pair_flows", lambda a, b, *flow: calls.append(1) or original(a, b, *flow))
    f0, truth, f1 = _pan(2)
    runner = FusedInterpolator(_Blend(), "blend+dis")
    x0, x1 = (np.repeat(f.transpose(2, 0, 1)[None], 3, 0) for f in (f0, f1))
    t = np.array([0.25, 0.5, 0.75], np.float32).reshape(3, 1, 1, 1)
    out = runner.run({FRAME0: x0, FRAME1: x1, TIMESTEP: t})[FRAME_OUT]
    assert out.shape == (3, 3, 64, 64) and out.dtype == np.float32 and len(calls) == 1
    runner.run({FRAME0: x0[:1], FRAME1: x1[:1], TIMESTEP: t[1:2]})  # the same pair again: cached
    assert len(calls) == 1
    assert _inner(out[1].transpose(1, 2, 0), truth, 8) < _inner(0.5 * f0 + 0.5 * f1, truth, 8)
    assert "DIS" in runner.describe()["fusion"] and runner.describe()["backend"] == "blend"


def test_names_backends_benchmark_and_app():
    import argparse

    from evaluate.interpolate import plan
    from serve.interp_core import interp_backend
    from ui.video_tab import interpolation_models

    assert interp_fusion.split_name("flowinterp+dis") == "flowinterp" and interp_fusion.split_name("x") is None
    assert isinstance(interp_backend("flowinterp+dis", "torch-cpu"), FusedInterpolator)
    with pytest.raises(ValueError, match="not a frame interpolator"):
        interp_backend("flashsr_x2+dis", "torch-cpu")
    assert plan(argparse.Namespace(model="blend,flowinterp+dis")) == ["blend", "flowinterp+dis"]
    with pytest.raises(SystemExit):
        plan(argparse.Namespace(model="flashsr_x2+dis"))
    names = interpolation_models()
    assert names[0].endswith("+dis") and "flowinterp+dis" in names and "flowinterp" in names


def test_pair_and_video_interpolation_with_fusion(tmp_path):
    from serve.interpolate import interpolate_pair
    from serve.video_io import make_test_clip, read_frames
    from serve.video_job import process_video

    f0, truth, f1 = _pan(2)
    (mid,) = interpolate_pair(f0, f1, "flowinterp+dis", 2, "torch-cpu")
    assert mid.shape == (64, 64, 3)
    frames = [(np.clip(_pan(1, seed=3)[0][:, i:i + 48], 0, 1) * 255).astype(np.uint8) for i in range(4)]
    make_test_clip(tmp_path / "in.mp4", frames)
    info = process_video(tmp_path / "in.mp4", tmp_path / "out.mp4", fps_factor=2, interp_model="flowinterp+dis",
                         backend="torch-cpu")
    assert info["model"] == "flowinterp+dis" and len(list(read_frames(tmp_path / "out.mp4"))) == 8


@pytest.mark.parametrize("h, w", [(8, 8), (13, 5), (1, 100), (16, 16)])
def test_tiny_frames_get_a_flow_and_a_fused_frame(h, w):
    """DIS itself raises on frames like these (the gauntlet's 8x8 pair made /interpolate answer 'Internal
    error'); the estimator pads them, so the default interpolator answers at any size the app accepts."""
    from common.dis_flow import make_flow_estimator
    from serve.interpolate import interpolate_pair

    rng = np.random.default_rng(0)
    a, b = ((rng.random((h, w)) * 255).astype(np.uint8) for _ in range(2))
    assert make_flow_estimator()(a, b).shape == (h, w, 2)
    if min(h, w) >= 8:  # the app's smallest frame
        f0, f1 = (rng.random((h, w, 3)).astype(np.float32) for _ in range(2))
        (mid,) = interpolate_pair(f0, f1, "flowinterp+dis", 2, "torch-cpu")
        assert mid.shape == (h, w, 3) and np.isfinite(mid).all()


def test_dis_flow_targets_for_distillation():
    """train.interpolate --distill-weight: frames 4 px apart (a 2-px-per-frame pan, the middle frame the truth):
    DIS's intermediate flows at t = 0.5 are +2 / -2 px in x, 0 in y, with high confidence inside the frame."""
    import torch

    from train.interpolate import dis_targets

    f0, _, f1 = _pan(2)
    x0, x1 = (torch.from_numpy(f.transpose(2, 0, 1))[None] for f in (f0, f1))
    target, confidence = dis_targets(x0, x1, torch.full((1, 1, 1, 1), 0.5))
    assert target.shape == (1, 4, 64, 64) and confidence.shape == (1, 1, 64, 64)
    inner = target[0, :, 12:-12, 12:-12].mean(dim=(1, 2))  # F_t->0 (x, y), F_t->1 (x, y)
    assert torch.allclose(inner, torch.tensor([2.0, 0.0, -2.0, 0.0]), atol=0.25)
    assert float(confidence[0, 0, 12:-12, 12:-12].mean()) > 0.8


def test_distillation_trains_the_convlstm_and_is_refused_for_models_without_flows(tmp_path, image_folder):
    import torch

    from models.convlstm_interp import ConvLSTMInterpolator
    from train.interpolate import main

    model = ConvLSTMInterpolator().eval()
    x0, x1, t = torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 48), torch.full((1, 1, 1, 1), 0.5)
    frame, flow = model.forward_with_flow(x0, x1, t)
    assert torch.equal(frame, model(x0, x1, t)) and flow.shape == (1, 4, 32, 48)
    common = ["--iters", "2", "--batch-size", "2", "--patch", "48", "--data", str(image_folder), "--val-count", "2",
              "--val-every", "2", "--video-dir", "none", "--precision", "fp32", "--distill-weight", "0.1"]
    assert main(["--model", "convlstm_interp", "--run-dir", str(tmp_path / "c")] + common) == 0
    with pytest.raises(SystemExit, match="needs a model that returns its flows"):
        main(["--model", "flowinterp", "--run-dir", str(tmp_path / "f")] + common)
