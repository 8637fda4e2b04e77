"""Frame interpolation: models, synthetic triplets, training smoke run, evaluation JSON, export parity,
the pair and video pipelines, and bad inputs. Everything runs on tiny synthetic data in tmp dirs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image

from common.motion import MotionConfig, heldout_triplets
from common.paths import PROJECT_ROOT
from models import get_spec, save_checkpoint
from models.convlstm_interp import ConvLSTMInterpolator
from models.flowinterp import FlowInterp, backward_warp
from serve.contract import InputError
from tests.conftest import smooth_image
from train.interp_data import TripletDataset

MODELS = ("flowinterp", "convlstm_interp")


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(PROJECT_ROOT)}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Randomly perturbed checkpoints of both models (the zero-initialised heads made non-trivial)."""
    folder = tmp_path_factory.mktemp("interp_weights")
    paths = {}
    for name in MODELS:
        spec = get_spec(name)
        torch.manual_seed(0)
        model = spec.build()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.01)
        paths[name] = folder / f"{name}.safetensors"
        save_checkpoint(paths[name], model, arch=spec.arch, args=dict(spec.kwargs))
    return paths


@pytest.mark.parametrize("cls", [FlowInterp, ConvLSTMInterpolator])
@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_model_shapes_any_size_and_t(cls, t):
    model = cls().eval()
    a, b = torch.rand(2, 3, 37, 53), torch.rand(2, 3, 37, 53)
    with torch.no_grad():
        out = model(a, b, torch.full((2, 1, 1, 1), t))
    assert out.shape == (2, 3, 37, 53) and torch.isfinite(out).all()


def test_grey_convlstm_and_fresh_models_start_at_the_blend():
    a, b, t = torch.rand(1, 1, 24, 40), torch.rand(1, 1, 24, 40), torch.full((1, 1, 1, 1), 0.25)
    with torch.no_grad():
        assert torch.allclose(ConvLSTMInterpolator(in_channels=1)(a, b, t), 0.75 * a + 0.25 * b, atol=1e-5)
        seed_head = ConvLSTMInterpolator(in_channels=1, features=16, hidden_dims=(16, 16), predict="residual")
        assert torch.allclose(seed_head(a, b, t), 0.75 * a + 0.25 * b, atol=1e-6)
        a3, b3 = a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1)
        # zero flow and a 0.5 mask: the untrained flow model is the 50/50 blend (warping is the identity)
        assert torch.allclose(FlowInterp()(a3, b3, t), 0.5 * (a3 + b3), atol=1e-5)


def test_the_convlstm_context_branch_starts_as_a_no_op_and_widens_the_reach():
    """context=3 adds dilated 3x3 convs (dilation 2, 4, 8) beside the decoder's first layer: zero-initialised
    output, so a model grown from context=0 weights starts exactly where it was; once trained, a change far
    from a pixel reaches that pixel's flow through it (reach 2 + 4 + 8 = 14 half-resolution px more)."""
    torch.manual_seed(0)
    plain = ConvLSTMInterpolator(context=0).eval()
    grown = ConvLSTMInterpolator(context=3).eval()
    grown.load_state_dict(plain.state_dict(), strict=False)
    for p in plain.decode[2].parameters():  # a decoder that is not zero, so flows depend on the states
        torch.nn.init.normal_(p, std=0.1)
    grown.decode[2].load_state_dict(plain.decode[2].state_dict())
    a, b, t = torch.rand(1, 3, 128, 128), torch.rand(1, 3, 128, 128), torch.full((1, 1, 1, 1), 0.5)
    with torch.no_grad():
        assert torch.equal(plain(a, b, t), grown(a, b, t))
        torch.nn.init.normal_(grown.context[-1].weight, std=0.1)
        far = a.clone()
        far[..., 100:, 100:] = torch.rand(1, 3, 28, 28)  # change only the far corner
        flows = [m.forward_with_flow(x, b, t)[1][..., 60, 60] for m in (plain, grown) for x in (a, far)]
    assert torch.equal(flows[0], flows[1]) and not torch.equal(flows[2], flows[3])


def test_convlstm_hidden_states_carry_signal():
    """The seed's initialisation left the hidden states nearly constant (std ~1e-4): no gradient, no learning."""
    torch.manual_seed(0)
    f0 = torch.rand(2, 3, 32, 32)
    seq_in = torch.cat([f0 - 0.5, torch.full((2, 1, 32, 32), 0.5)], 1)
    model = ConvLSTMInterpolator()
    with torch.no_grad():
        feats = model.encode(seq_in)
        outputs, _ = model.lstm(torch.stack([feats, feats.roll(1, 3)], 1))
    assert float(outputs[:, -1].std(dim=(0, 2, 3)).mean()) > 0.02


def test_video_triplets_from_cached_clips(tmp_path, rng):
    """Real-motion triplets: frames i, i+k, i+gap of a (cached) clip, t = k/gap, crops and reversal."""
    from train.interp_data import MixedTripletDataset, TripletDataset, decode_clip, video_triplet, video_validation

    frames = (rng.random((12, 300, 300, 3)) * 255).astype(np.uint8)
    for s in (2, 4):
        np.save(tmp_path / f"clip_x{s}.npy", frames[:, ::s, ::s])
    clip = decode_clip(tmp_path / "clip.mp4", tmp_path)  # cached: no decoding
    f0, ft, f1, t = video_triplet(clip, np.random.default_rng(0), 64)
    assert f0.shape == ft.shape == f1.shape == (64, 64, 3) and 0 < t < 1 and f0.dtype == np.float32
    assert {round(video_triplet(clip, np.random.default_rng(i), 64)[3], 3) for i in range(40)} - {0.5}
    syn = TripletDataset([rng.random((80, 80, 3)).astype(np.float32)], MotionConfig(size=64))
    mixed = MixedTripletDataset({"clip": clip}, syn, 64, video_fraction=0.5)
    items = [mixed[i] for i in range(6)]
    assert all(x[0].shape == (3, 64, 64) and x[3].shape == (1, 1, 1) for x in items)
    assert len(video_validation(clip, count=4, size=64)) == 4


def test_backward_warp_moves_by_the_flow():
    img = torch.rand(1, 3, 16, 20)
    flow = torch.zeros(1, 2, 16, 20)
    flow[:, 0] = 2.0  # sample 2 px to the right
    warped = backward_warp(img, flow)
    assert torch.allclose(warped[..., :-2], img[..., 2:], atol=1e-5)


def test_ensemble_is_the_mean_of_the_pair_and_its_mirrored_time_reversal():
    torch.manual_seed(0)
    model = FlowInterp(channels=(16, 12, 8), refine_channels=8, ensemble=True).eval()
    for p in model.parameters():  # zero-initialised output layers would make both passes the blend
        p.data.add_(0.02 * torch.randn_like(p))
    x0, x1, t = torch.rand(2, 3, 48, 64), torch.rand(2, 3, 48, 64), torch.tensor([0.3, 0.6]).view(2, 1, 1, 1)
    with torch.no_grad():
        both = model(x0, x1, t)
        model.ensemble = False
        single = model(x0, x1, t)
        mirrored = model(x1.flip(-1), x0.flip(-1), 1 - t).flip(-1)
    assert torch.allclose(both, (single + mirrored) / 2, atol=1e-6)
    assert not torch.allclose(single, mirrored, atol=1e-3)


def test_triplet_generator_is_reproducible(rng):
    images = [smooth_image(rng, 90, 120) for _ in range(3)]
    ds = TripletDataset(images, MotionConfig(size=48, max_shift=6), seed=5)
    first, again, other = ds[7], ds[7], ds[8]
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    assert not torch.equal(first[0], other[0])
    f0, ft, f1, t = first
    assert f0.shape == ft.shape == f1.shape == (3, 48, 48) and t.shape == (1, 1, 1) and 0 < float(t) < 1
    assert float(f0.min()) >= 0 and float(f0.max()) <= 1 and not torch.equal(f0, f1)
    times = {round(float(ds[i][3]), 3) for i in range(40)}
    assert len(times) > 3  # several timesteps, not only 0.5
    held = heldout_triplets(images, size=32, seed=1)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(held, heldout_triplets(images, size=32, seed=1)))
    assert {h[3] for h in held} == {0.5}


@pytest.mark.slow
def test_training_smoke_run_resumes(tmp_path, image_folder):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "train.interpolate", "--model", "flowinterp", "--iters", "5", "--batch-size", "2",
           "--patch", "48", "--data", str(image_folder), "--val-count", "2", "--val-every", "5", "--run-dir", str(run),
           "--video-dir", "none"]
    done = subprocess.run(cmd, cwd=PROJECT_ROOT, env=_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss") and rows[1].startswith("5,")
    info = json.loads((run / "model.json").read_text())
    assert info["arch"] == "flowinterp" and info["iterations"] == 5
    again = subprocess.run(cmd[:6] + ["6"] + cmd[7:], cwd=PROJECT_ROOT, env=_env(), capture_output=True, text=True,
                           timeout=240)
    assert again.returncode == 0 and "resuming" in again.stderr


def test_evaluation_json(tmp_path, monkeypatch, capsys, rng, checkpoints):
    from evaluate import cli as evaluate

    bsd = tmp_path / "benchmark" / "BSD68"
    bsd.mkdir(parents=True)
    for i in range(2):
        Image.fromarray((smooth_image(rng, 300, 300) * 255).astype(np.uint8)).save(bsd / f"{i}.png")
    for i in range(2):
        folder = tmp_path / "vfi" / "UCF101" / str(i)
        folder.mkdir(parents=True)
        for name in ("frame_00.png", "frame_01_gt.png", "frame_02.png"):
            Image.fromarray((smooth_image(rng, 64, 64) * 255).astype(np.uint8)).save(folder / name)
    monkeypatch.setenv("STSR_DATA", str(tmp_path))
    assert evaluate.main(["--task", "interpolate", "--model", "blend", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["set"]) for r in rows] == [("blend", "BSD68"), ("blend", "UCF101")]
    assert all({"model", "set", "psnr", "ssim"} <= set(r) for r in rows)
    assert evaluate.main(["--task", "interpolate", "--model", "flowinterp", "--sets", "UCF101", "--json",
                          "--weights", str(checkpoints["flowinterp"])]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["model"] == "flowinterp" and row["psnr"] > 5 and 0 < row["ssim"] <= 1


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.slow
def test_onnx_export_parity_with_gridsample(tmp_path, checkpoints, name):
    import onnx

    from export.onnx_export import export_onnx, read_onnx_record

    path = export_onnx(name, checkpoints[name], tmp_path)
    record = read_onnx_record(path)
    assert max(record["parity"]["max_abs_error"].values()) <= 1e-4
    assert "2x37x53" in record["parity"]["max_abs_error"]  # odd size, batch 2
    assert [i["name"] for i in record["inputs"]] == ["frame0", "frame1", "t"]
    graph = onnx.load(str(path))
    ops = {n.op_type for n in graph.graph.node}
    assert record["opset"] >= 16
    if name == "flowinterp":
        assert "GridSample" in ops


def test_interpolate_pair(checkpoints):
    from serve.interpolate import interpolate_pair

    a = smooth_image(np.random.default_rng(0), 40, 56)
    b = np.roll(a, 2, axis=1)
    opts = {"weights_path": str(checkpoints["flowinterp"])}
    (mid,) = interpolate_pair(a, b, "flowinterp", 2, "torch-cpu", **opts)
    assert mid.shape == (40, 56, 3) and mid.dtype == np.float32 and 0 <= mid.min() and mid.max() <= 1
    quarter = interpolate_pair(a, b, "flowinterp", 4, "torch-cpu", **opts)
    assert len(quarter) == 3
    grey = interpolate_pair((a[..., 0] * 255).astype(np.uint8), (b[..., 0] * 255).astype(np.uint8), "flowinterp", 2,
                            "torch-cpu", **opts)[0]
    assert np.allclose(grey[..., 0], grey[..., 1])
    with pytest.raises(InputError, match="different sizes"):
        interpolate_pair(a, a[:20], "flowinterp", 2, "torch-cpu", **opts)
    with pytest.raises(InputError, match="two frames"):
        interpolate_pair(a, None, "flowinterp", 2, "torch-cpu", **opts)
    with pytest.raises(InputError, match="factor"):
        interpolate_pair(a, b, "flowinterp", 3, "torch-cpu", **opts)
    with pytest.raises(ValueError, match="not a frame interpolator"):
        interpolate_pair(a, b, "flashsr_x2", 2, "torch-cpu")


def _clip(path, rng, audio=None, cut_at=4, frames=8):
    a = smooth_image(rng, 48, 80)
    b = 0.3 * (1.0 - smooth_image(rng, 48, 80)[::-1])  # another, darker "shot"
    seq = [np.roll(a if i < cut_at else b, 2 * i, axis=1) for i in range(frames)]
    from serve.video import make_test_clip

    make_test_clip(path, [(f * 255).astype(np.uint8) for f in seq], Fraction(10), audio_seconds=audio)
    return path


def test_video_round_trip(tmp_path, rng, checkpoints):
    from serve.interpolate import interpolate_video
    from serve.video import read_frames, stream_summary

    src = _clip(tmp_path / "in.mp4", rng, audio=0.8)
    out = tmp_path / "out" / "out.mp4"
    seen = []
    info = interpolate_video(src, out, 2, "flowinterp", backend="torch-cpu", progress=lambda d, n: seen.append((d, n)),
                             weights_path=str(checkpoints["flowinterp"]))
    assert info["frames_in"] == 8 and info["frames_out"] == 16 and info["fps_out"] == 20.0
    assert info["scene_cuts"] == [4] and info["audio"] is True and seen[-1] == (16, 16)  # output frames
    summary = stream_summary(out)
    assert summary["codec"] == "h264" and summary["fps"] == 20.0 and summary["audio_codec"] == "aac"
    frames = [f.astype(np.float32) for f in read_frames(out)]
    assert len(frames) == 16
    assert np.abs(frames[7] - frames[6]).mean() < 3  # across the cut: the frame is repeated, not morphed
    assert np.abs(frames[8] - frames[7]).mean() > 20
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.mp4"]  # no temp file left


def test_video_factor_four_and_odd_size(tmp_path, rng, checkpoints):
    from serve.interpolate import interpolate_video
    from serve.video import make_test_clip

    frames = [(np.roll(smooth_image(rng, 33, 45), i, axis=1) * 255).astype(np.uint8) for i in range(3)]
    make_test_clip(tmp_path / "odd.mp4", frames, Fraction(30000, 1001))
    info = interpolate_video(tmp_path / "odd.mp4", tmp_path / "odd4.mp4", 4, "flowinterp", backend="torch-cpu",
                             weights_path=str(checkpoints["flowinterp"]))
    assert info["frames_out"] == 12 and abs(info["fps_out"] - 4 * 30000 / 1001) < 1e-6 and info["audio"] is False


def test_bad_videos_give_clear_messages_and_leave_nothing(tmp_path, rng, checkpoints):
    import av

    from serve.interpolate import interpolate_video
    from serve.video import probe, rate_variation

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    opts = {"model_name": "flowinterp", "backend": "torch-cpu", "weights_path": str(checkpoints["flowinterp"])}
    corrupt = tmp_path / "corrupt.mp4"
    # seeded noise: os.urandom's bytes were now and then probed by FFmpeg as a container without a video
    # stream (a refusal with its own message, tested below); these bytes are always unreadable
    corrupt.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match="not a readable video"):
        interpolate_video(corrupt, out_dir / "a.mp4", **opts)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        interpolate_video(empty, out_dir / "a.mp4", **opts)
    audio_only = tmp_path / "tone.m4a"
    with av.open(str(audio_only), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=16000)
        s.layout = "mono"
        for _ in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    with pytest.raises(InputError, match="audio-only"):
        interpolate_video(audio_only, out_dir / "a.mp4", **opts)
    long_clip = _clip(tmp_path / "long.mp4", rng, frames=12)
    with pytest.raises(InputError, match="limit of 0.5 s"):
        interpolate_video(long_clip, out_dir / "a.mp4", max_seconds=0.5, **opts)
    single = _clip(tmp_path / "single.mp4", rng, frames=1)
    with pytest.raises(InputError, match="single frame"):
        interpolate_video(single, out_dir / "a.mp4", **opts)
    with pytest.raises(InputError, match="more than 5 frames"):
        probe(long_clip, max_frames=5)
    assert "variable frame rate" in rate_variation([0.0, 0.1, 0.2, 0.5, 0.55], Fraction(10))
    assert rate_variation([0.0, 0.1, 0.2, 0.3], Fraction(10)) is None
    vfr = tmp_path / "vfr.mkv"
    with av.open(str(vfr), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        s.codec_context.time_base = Fraction(1, 100)
        for pts in (0, 10, 20, 50, 55, 90):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 100)
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    assert list(out_dir.iterdir()) == []
    info = interpolate_video(vfr, out_dir / "a.mp4", **opts)  # variable frame rate: converted, not refused
    assert info["vfr"] and "converted to a constant" in info["notes"][0]


def test_cli_reports_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    done = subprocess.run([sys.executable, "-m", "serve.interpolate", str(bad), "--out", str(tmp_path / "o.mp4")],
                          cwd=PROJECT_ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: bad.mp4: not a readable video")
    assert not (tmp_path / "o.mp4").exists()
    from serve.interpolate import main

    pair = []
    for i in range(2):
        pair.append(tmp_path / f"f{i}.png")
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(pair[-1])
    code = main([str(pair[0]), str(pair[1]), "--out", str(tmp_path / "m.png"), "--sr-model", "flashsr_x2"])
    assert code == 2 and "--sr-model applies to a video" in capsys.readouterr().err  # it was silently ignored


def test_the_default_interpolators_are_constants_and_lead_their_dropdowns():
    """The pair and video defaults are serve.interp_core's constants, and each dropdown lists its own first."""
    import inspect

    from serve.interp_core import DEFAULT_INTERPOLATOR, VIDEO_INTERPOLATOR
    from serve.interp_fusion import split_name
    from serve.interpolate import interpolate_pair, interpolate_video
    from serve.video_job import process_video
    from ui.video_tab import interpolation_models, video_interpolation_models

    plain, video_plain = split_name(DEFAULT_INTERPOLATOR), split_name(VIDEO_INTERPOLATOR)  # both fused with DIS
    assert get_spec(plain).timestep_input and get_spec(video_plain).timestep_input
    assert inspect.signature(interpolate_pair).parameters["model_name"].default == DEFAULT_INTERPOLATOR
    assert inspect.signature(interpolate_video).parameters["model_name"].default == VIDEO_INTERPOLATOR
    assert inspect.signature(process_video).parameters["interp_model"].default == VIDEO_INTERPOLATOR
    if get_spec(plain).has_weights() and get_spec(video_plain).has_weights():
        assert interpolation_models()[0] == DEFAULT_INTERPOLATOR
        assert video_interpolation_models()[0] == VIDEO_INTERPOLATOR
