"""Video SR (issue #18): the recurrent model, its step export, and the streaming upscaler's edge cases."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from export.onnx_export import MIN_OPSET, _torch_export
from export.parity import check_parity
from export.vsr_parity import check_clip_parity, moving_clip
from models import get_spec
from models.flashsr import FlashSR
from models.io import contract
from models.vsr import VideoFlashSR, VSRStep
from serve.contract import InputError


def tiny(channels=64, seed=0, fused=True, scale=4) -> VideoFlashSR:
    """A small, fast video model; `fused` gives the zero-initialised fusion random weights (an untrained
    model is per-frame FlashSR and would hide propagation bugs)."""
    torch.manual_seed(seed)
    model = VideoFlashSR(scale=scale, channels=channels, blocks=1, flow_channels=(16, 16, 16), fuse_channels=16)
    torch.nn.init.normal_(model.sr.upsample[0].weight, std=0.02)
    if fused:
        torch.nn.init.normal_(model.fuse[2].weight, std=0.05)
    return model.eval()


def test_shapes():
    model = tiny(channels=16)
    clip = torch.rand(2, 3, 3, 11, 17)
    with torch.no_grad():
        out = model(clip)
        sr, hidden = model.step(clip[:, 0], clip[:, 0], model.start_hidden(clip[:, 0]))
    assert out.shape == (2, 3, 3, 44, 68)
    assert sr.shape == (2, 3, 44, 68) and hidden.shape == (2, 16, 11, 17)


def test_registered_contract():
    spec = get_spec("vsr_x4")
    io = spec.io
    assert io.input_names == ("lr", "prev_lr", "hidden") and io.output_names == ("sr", "hidden_out")
    assert io.inputs[2].shape == ("batch", 64, "height", "width")
    assert spec.build().hidden_channels == spec.recurrent_hidden


@pytest.mark.parametrize("fuse_at", ["head", "trunk"])
def test_untrained_video_model_is_per_frame_flashsr(fuse_at):
    """Warm-started and with the zero fusion, every frame is FlashSR's; with the fusion trained it is not."""
    torch.manual_seed(1)
    flash = FlashSR(scale=4, channels=16, blocks=2, dropout=0.0)
    torch.nn.init.normal_(flash.upsample[0].weight, std=0.05)
    model = VideoFlashSR(scale=4, channels=16, blocks=2, flow_channels=(16, 16, 16), fuse_channels=8,
                         flow_time=0.5, fuse_at=fuse_at)
    model.sr.load_state_dict(flash.state_dict())
    model.eval()
    clip = moving_clip(5, 24, 32)
    with torch.no_grad():
        video = model(clip)[0]
        single = torch.stack([flash.eval()(clip[:, t])[0] for t in range(5)])
        assert torch.allclose(video, single, atol=1e-6)
        torch.nn.init.normal_(model.fuse[2].weight, std=0.05)
        fused = model(clip)[0]
    assert (fused[1:] - single[1:]).abs().max() > 1e-3  # later frames use the propagated features


@pytest.mark.parametrize("name", ["vsr_x2", "vsr_x4"])
def test_warm_started_video_model_is_shipped_flashsr(name):
    """The trainer's warm start from the shipped flashsr_xS / flowinterp weights: before any training, every
    frame of the registered video model is exactly the shipped per-frame model's output."""
    from models import load_model
    from train.vsr import warm_start

    spec = get_spec(name)
    flash_name = f"flashsr_x{spec.scale}"
    if not get_spec(flash_name).has_weights() or not get_spec("flowinterp").has_weights():
        pytest.skip("shipped weights absent")
    model = spec.build().eval()
    warm_start(model, spec.scale, None, None)
    flash = load_model(flash_name)
    clip = moving_clip(4, 20, 28)
    with torch.no_grad():
        video = model(clip)[0]
        single = torch.stack([flash(clip[:, t])[0] for t in range(4)])
    assert video.shape == (4, 3, 20 * spec.scale, 28 * spec.scale)
    assert torch.allclose(video, single, atol=1e-6)


def test_midpoint_flow_aligns_better_than_asking_at_t0():
    """scripts/vsr_diagnose.py's finding: flowinterp's blocks, trained on 0 < t < 1, find little of the motion
    asked at t = 0; F_t->1 - F_t->0 at t = 0.5 (flow_time=0.5) aligns a panned texture much better."""
    from models.checkpoint import read_weights
    from models.flowinterp import backward_warp

    flow_weights = get_spec("flowinterp").weights_path
    if not flow_weights.exists():
        pytest.skip("shipped flowinterp weights absent")
    state = {k: v for k, v in read_weights(flow_weights).items() if not k.startswith("refine.")}
    torch.manual_seed(0)
    frames = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 16), size=(48, 64), mode="bicubic",
                                             align_corners=False).clamp(0, 1)
    cur, prev = frames[..., 4:36, 4:52], frames[..., 5:37, 6:54]  # prev = cur moved by (-2, -1) px
    errors = {}
    for flow_time in (0.0, 0.5):
        model = VideoFlashSR(scale=2, blocks=1, flow_time=flow_time).eval()
        model.flow.load_state_dict(state)
        with torch.no_grad():
            flow = model.estimate_flow(cur, prev)
        errors[flow_time] = float((cur - backward_warp(prev, flow)).abs()[..., 4:-4, 4:-4].mean())
    still = float((cur - prev).abs()[..., 4:-4, 4:-4].mean())
    assert errors[0.5] < 0.5 * errors[0.0] and errors[0.0] < still


def test_restart_equals_fresh_start():
    model = tiny(channels=16)
    clip = moving_clip(6, 20, 24)
    with torch.no_grad():
        restarted = model(clip, restart=[False, False, False, True, False, False])[0]
        fresh = model(clip[:, 3:])[0]
        carried = model(clip)[0]
    assert torch.allclose(restarted[3:], fresh, atol=1e-6)
    assert (carried[3:] - fresh).abs().max() > 1e-4


def _export(tmp_path, model):
    spec = replace(get_spec("vsr_x4"), recurrent_hidden=model.hidden_channels)
    path = tmp_path / "step.onnx"
    _torch_export(VSRStep(model), contract(spec), path, MIN_OPSET)
    return path, spec


def test_step_export_parity_over_a_clip(tmp_path):
    model = tiny(channels=16)
    path, spec = _export(tmp_path, model)
    assert max(check_parity(path, VSRStep(model), spec).values()) <= 1e-4
    errors = check_clip_parity(path, model)
    assert len(errors) == 2 and max(errors.values()) <= 1e-4


def test_clip_parity_catches_a_wrong_graph(tmp_path):
    """The clip check must fail when the graph is not the model (an export of other weights)."""
    path, _ = _export(tmp_path, tiny(channels=16, seed=0))
    with pytest.raises(Exception, match="differs from PyTorch"):
        check_clip_parity(path, tiny(channels=16, seed=1))


@pytest.fixture
def tiny_backend(monkeypatch):
    """serve.vsr on a tiny torch model under the registered name (no shipped weights needed); vsr_x2 gets
    a tiny x2 model."""
    import serve.vsr
    from serve.backends import TorchBackend

    models = {4: tiny(channels=64), 2: tiny(channels=64, scale=2)}
    monkeypatch.setattr(serve.vsr, "get_backend",
                        lambda name, kind="auto", **kw: TorchBackend(name, module=models[get_spec(name).scale]))
    return models[4]


def _frames(count, seed, h=24, w=32):
    """`count` frames of one smooth random scene panned by a pixel per frame (a real shot to the cut detector)."""
    import cv2

    rng = np.random.default_rng(seed)
    base = cv2.resize((rng.random((6, 6, 3)) * 255).astype(np.uint8), (w + 8, h + 8), interpolation=cv2.INTER_CUBIC)
    return [np.ascontiguousarray(base[i: i + h, i: i + w]) for i in range(count)]


def test_upscaler_restarts_at_a_scene_cut(tiny_backend):
    from serve.vsr import VideoUpscaler, upscale_clip

    shot_a = _frames(3, 0)
    shot_b = [f // 4 for f in _frames(3, 1)]  # another, dark scene: a cut by the detector's measure
    upscaler = VideoUpscaler("vsr_x4", "torch-cpu")
    out = [upscaler(f) for f in shot_a + shot_b]
    assert upscaler.cuts == [3]
    fresh = upscale_clip(shot_b, "vsr_x4", "torch-cpu")
    for got, want in zip(out[3:], fresh):
        np.testing.assert_array_equal(got, want)
    upscaler.reset()
    assert np.array_equal(upscaler(shot_b[0]), fresh[0])


def test_one_frame_clip(tiny_backend):
    from serve.vsr import upscale_clip

    (frame,) = _frames(1, 2)
    (out,) = upscale_clip([frame], "vsr_x4", "torch-cpu")
    assert out.shape == (96, 128, 3) and out.dtype == np.uint8
    with torch.no_grad():
        x = torch.from_numpy(frame.transpose(2, 0, 1)[None].astype(np.float32) / 255)
        want, _ = tiny_backend.step(x, x, tiny_backend.start_hidden(x))
    want = np.rint(want[0].clamp(0, 1).numpy().transpose(1, 2, 0) * 255)
    assert np.abs(out.astype(int) - want).max() <= 1


def test_changing_frame_size_is_refused_clearly(tiny_backend):
    from serve.vsr import VideoUpscaler, upscale_clip

    frames = _frames(2, 3) + _frames(1, 4, h=20, w=32)
    with pytest.raises(InputError, match="frame 2 is 32x20, frame 0 is 32x24"):
        upscale_clip(frames, "vsr_x4", "torch-cpu")
    upscaler = VideoUpscaler("vsr_x4", "torch-cpu")
    upscaler(frames[0])
    with pytest.raises(InputError, match="frame size changes"):
        upscaler(frames[2])


def test_limits_and_bad_frames_are_refused(tiny_backend):
    from serve.vsr import VideoUpscaler, upscale_clip

    with pytest.raises(InputError, match="no frames"):
        upscale_clip([], "vsr_x4", "torch-cpu")
    with pytest.raises(InputError, match="over the multi-frame model's limit"):
        VideoUpscaler("vsr_x4", "torch-cpu", max_frame_pixels=500)(_frames(1, 5)[0])
    with pytest.raises(InputError, match="HxWx3"):
        VideoUpscaler("vsr_x4", "torch-cpu")(np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError, match="not a multi-frame"):
        VideoUpscaler("flashsr_x4", "torch-cpu")


@pytest.mark.parametrize("factor", [1, 2])
def test_video_job_with_video_sr(tmp_path, tiny_backend, monkeypatch, factor):
    """serve.video_job runs the multi-frame model alone (x1) and SR-first with interpolation (x2), and
    reports the cut it restarted at."""
    import serve.vsr
    from serve.video_io import make_test_clip, read_frames
    from serve.video_job import process_video

    made = []
    original = serve.vsr.VideoUpscaler
    serve_upscaler = lambda *a, **k: made.append(original(*a, **k)) or made[-1]  # noqa: E731
    src = tmp_path / "in.mp4"
    make_test_clip(src, _frames(3, 6, h=32, w=48) + [f // 4 for f in _frames(3, 7, h=32, w=48)])
    monkeypatch.setattr(serve.vsr, "VideoUpscaler", serve_upscaler)
    info = process_video(src, tmp_path / "out.mp4", sr_model="vsr_x4", fps_factor=factor,
                         interp_model="flowinterp", backend="torch-cpu")
    assert info["sr_model"] == "vsr_x4" and info["frames_out"] == 6 * factor
    frames = list(read_frames(tmp_path / "out.mp4"))
    assert len(frames) == 6 * factor and frames[0].shape == (128, 192, 3)
    assert made and made[0].frames == 6 and made[0].cuts == [3]


def test_evaluate_cli_needs_a_model_except_for_vsr():
    from evaluate.cli import parse_args

    assert parse_args(["--task", "vsr"]).model is None
    with pytest.raises(SystemExit):
        parse_args(["--task", "sr"])


def test_temporal_consistency_figure():
    """1.0 for the truth itself, above 1 for an output that flickers, below for a frozen one."""
    from evaluate.vsr import flicker, truth_flows

    frames = [f.astype(np.float32) / 255 for f in _frames(4, 8, h=40, w=56)]
    flows = truth_flows(frames)
    truth = flicker(frames, flows, 4)
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, 0.03, f.shape), 0, 1) for f in frames]
    assert flicker(noisy, flows, 4) / truth > 1.5
    frozen = [frames[0]] * 4
    assert flicker(frozen, [np.zeros_like(f) for f in flows], 4) == 0.0


def test_temporal_error_is_zero_for_the_truth_and_counts_both_flicker_and_freezing():
    from evaluate.vsr import temporal_error, truth_flows

    frames = [f.astype(np.float32) / 255 for f in _frames(4, 8, h=40, w=56)]
    flows = truth_flows(frames)
    assert temporal_error(frames, frames, flows, 4) == 0.0
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, 0.03, f.shape), 0, 1) for f in frames]
    assert temporal_error(noisy, frames, flows, 4) > 3.0
    frozen = [frames[0]] * 4  # perfectly "stable", but it does not move as the truth does
    assert temporal_error(frozen, frames, flows, 4) > 1.0


def test_trainer_runs_resumes_and_publishes(tmp_path):
    """A few bf16-or-fp32 steps on synthetic motion, then a resume that continues from the saved step."""
    from PIL import Image

    from train.vsr import main

    data = tmp_path / "images"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((48, 48, 3)) * 255).astype(np.uint8)).save(data / f"{i}.png")
    run = tmp_path / "run"
    common = ["--data", str(data), "--video-dir", "none", "--val-count", "0", "--patch", "16", "--frames", "2",
              "--batch-size", "1", "--run-dir", str(run), "--save-every", "1", "--val-every", "1",
              "--precision", "fp32"]
    assert main(common + ["--iters", "2"]) == 0
    assert main(common + ["--iters", "3"]) == 0
    steps = [line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == ["1", "2", "3"]
    state = torch.load(run / "state.pt", weights_only=False)
    assert state["step"] == 3 and (run / "model.safetensors").exists()


def test_serve_video_cli_runs_vsr_x2(tmp_path, tiny_backend):
    """`python -m serve.video IN --sr vsr_x2`: every frame doubled, the cut restarts the propagation."""
    from serve.video import main
    from serve.video_io import make_test_clip, read_frames

    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_test_clip(src, _frames(3, 9, h=32, w=48) + [f // 4 for f in _frames(2, 10, h=32, w=48)])
    assert main([str(src), "--sr", "vsr_x2", "--backend", "torch-cpu", "--out", str(out)]) == 0
    frames = list(read_frames(out))
    assert len(frames) == 5 and frames[0].shape == (64, 96, 3)


def test_the_video_tab_offers_vsr_x2_and_stops_it(tmp_path, tiny_backend, stop_video_job_at_frame_2):
    """The tab lists "Video SR (multi-frame, recurrent) x2" once its weights exist, and a Stop during a vsr_x2 job
    stops at the next frame and leaves no file (the same path as the per-frame models)."""
    from ui import video_tab

    if get_spec("vsr_x2").has_weights():
        assert ("Video SR (multi-frame, recurrent) x2: vsr_x2", "vsr_x2") in video_tab.vsr_choices()
    target = tmp_path / "out" / "out.mp4"
    seen = stop_video_job_at_frame_2(_frames(4, 11, h=32, w=48), target, "vsr_x2", "torch-cpu")
    assert seen == [1, 2] and not list(target.parent.iterdir())


def test_factor_zero_freezes_a_part_so_a_step_skips_its_backward():
    """train.vsr --pretrained-lr-factor 0 --flow-lr-factor 0: only the fusion is optimised or differentiated."""
    import argparse

    from train.vsr import parameter_groups

    model = VideoFlashSR(scale=2, channels=8, blocks=1, flow_channels=(8, 8, 8), fuse_channels=8, fuse_at="trunk")
    groups = parameter_groups(model, argparse.Namespace(pretrained_lr_factor=0.0, flow_lr_factor=0.0))
    assert [g["factor"] for g in groups] == [1.0]
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.fuse.parameters()}
    assert not any(p.requires_grad for p in [*model.sr.parameters(), *model.flow.parameters()])
    groups = parameter_groups(model, argparse.Namespace(pretrained_lr_factor=0.2, flow_lr_factor=None))
    assert [g["factor"] for g in groups] == [1.0, 0.2, 0.2] and all(p.requires_grad for p in model.parameters())
