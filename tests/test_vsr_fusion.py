"""Multi-frame fusion video SR (serve/vsr_fusion.py, issue #18): the fusion rule, streaming, cuts, limits,
the video job, the CLI, the app and the benchmark's model names."""
import cv2
import numpy as np
import pytest

from common.images import to_uint8
from serve import vsr_fusion
from serve.contract import InputError
from serve.vsr_fusion import FusionUpscaler, fuse, fuse_clip, fused_anchors


def _scene(h=48, w=64, seed=0):
    """A smooth random float scene, larger than the frame so it can be panned."""
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.random((8, 8, 3), dtype=np.float32), (w + 16, h + 16), interpolation=cv2.INTER_CUBIC)


def _frames(count, seed, h=24, w=32):
    """uint8 frames of one scene panned by a pixel per frame (one shot to the cut detector)."""
    base = (np.clip(_scene(h, w, seed), 0, 1) * 255).astype(np.uint8)
    return [np.ascontiguousarray(base[i: i + h, i: i + w]) for i in range(count)]


def _nearest(scale):
    return lambda rgb: np.repeat(np.repeat(np.asarray(rgb), scale, 0), scale, 1)


def test_aligned_neighbours_average_out_independent_errors():
    """Neighbours that show the centre's content shifted by a known flow, each with its own noise: the fused
    frame is closer to the truth than the centre alone (about 1/sqrt(3) of its error for 2 neighbours)."""
    scene = _scene()
    truth = scene[8:56, 8:72]
    rng = np.random.default_rng(1)
    noisy = lambda img: np.clip(img + rng.normal(0, 0.01, img.shape).astype(np.float32), 0, 1)  # noqa: E731
    centre = noisy(truth)
    neighbours = [noisy(scene[8:56, 7:71]), noisy(scene[8:56, 9:73])]  # the content moved by +1 / -1 px
    flows = [np.full(truth.shape[:2] + (2,), 0, np.float32) for _ in range(2)]
    flows[0][..., 0], flows[1][..., 0] = 1.0, -1.0  # sampling the neighbour at x + flow gives the centre
    fused = fuse(centre, zip(neighbours, flows), scale=2, sigma=0.05)
    inner = (slice(2, -2), slice(2, -2))
    err_centre = np.abs(centre - truth)[inner].mean()
    err_fused = np.abs(fused - truth)[inner].mean()
    assert err_fused < 0.7 * err_centre


def test_a_neighbour_that_disagrees_is_not_used():
    """Wrong content (an occlusion, a failed flow) gets no weight: the output stays the centre's SR."""
    centre = np.clip(_scene()[:48, :64], 0, 0.999)
    other = (centre + 0.5) % 1.0  # 0.5 away everywhere
    zero = np.zeros(centre.shape[:2] + (2,), np.float32)
    np.testing.assert_allclose(fuse(centre, [(other, zero)], scale=4), centre, atol=1e-3)
    np.testing.assert_allclose(fuse(centre, [(centre.copy(), zero)], scale=4), centre, atol=1e-6)
    np.testing.assert_allclose(fuse(centre, [(to_uint8(centre), zero)], scale=4), centre, atol=3e-3)


def test_streaming_emits_every_frame_once_in_order_with_a_lag_of_radius():
    frames = _frames(6, 2)
    fuser = FusionUpscaler(_nearest(2), scale=2, radius=2)
    ready = [len(fuser.push(f)) for f in frames]
    assert ready == [0, 0, 1, 1, 1, 1]
    assert len(fuser.flush()) == 2 and fuser.flush() == []
    out = fuse_clip(frames, _nearest(2), scale=2)
    assert len(out) == 6 and all(o.shape == (48, 64, 3) and o.dtype == np.uint8 for o in out)
    # a static clip: every neighbour agrees exactly, so fusion (without the back-projection) changes nothing
    still = fuse_clip([frames[0]] * 5, _nearest(2), scale=2, back_project=False)
    assert all(np.array_equal(o, _nearest(2)(frames[0])) for o in still)


def test_neighbours_across_a_scene_cut_are_not_used(monkeypatch):
    used = []
    original = vsr_fusion.fuse
    monkeypatch.setattr(vsr_fusion, "fuse", lambda c, pairs, *a: original(c, used.append(list(pairs)) or used[-1], *a))
    frames = _frames(3, 3) + [255 - f for f in _frames(3, 4)]
    fuser = FusionUpscaler(_nearest(2), scale=2, radius=3)
    out = [o for f in frames for o in fuser.push(f)] + fuser.flush()
    assert len(out) == 6 and fuser.cuts == [3]
    assert [len(u) for u in used] == [2, 2, 2, 2, 2, 2]  # two neighbours each, none from the other shot


def test_back_projection_makes_the_output_consistent_with_its_input():
    lr = np.clip(_scene(24, 32), 0, 1)[:24, :32]
    rough = _nearest(4)(lr)
    before = np.abs(vsr_fusion.bicubic_down(rough, 4) - lr).mean()
    after = np.abs(vsr_fusion.bicubic_down(vsr_fusion.back_project(rough, lr, 4), 4) - lr).mean()
    assert after < 0.5 * before
    assert vsr_fusion.back_projects("flashsr_x4") and not vsr_fusion.back_projects("flashsr_real_x4")


def test_one_frame_clip_is_the_per_frame_result():
    frame = _frames(1, 5)[0]
    (out,) = fuse_clip([frame], _nearest(4), scale=4)
    assert np.array_equal(out, _nearest(4)(frame))


def test_bad_clips_are_refused_with_a_message():
    with pytest.raises(InputError, match="no frames"):
        fuse_clip([], _nearest(2), scale=2)
    fuser = FusionUpscaler(_nearest(2), scale=2)
    fuser.push(_frames(1, 6)[0])
    with pytest.raises(InputError, match="frame size changes"):
        fuser.push(_frames(1, 6, h=20)[0])
    with pytest.raises(InputError, match="HxWx3"):
        fuser.push(np.zeros((24, 32), np.uint8))
    with pytest.raises(InputError, match="multi-frame limit"):
        FusionUpscaler(_nearest(4), scale=4, max_output_pixels=1000).push(_frames(1, 6)[0])


def test_fused_anchors_keep_order_and_count():
    class Anchor:
        def __init__(self, rgb, index):
            self.rgb, self.index, self._float = rgb, index, "stale"

    frames = _frames(5, 7)
    out = list(fused_anchors((Anchor(f, i) for i, f in enumerate(frames)), FusionUpscaler(_nearest(2), scale=2)))
    assert [a.index for a in out] == list(range(5))
    assert all(a.rgb.shape == (48, 64, 3) and a._float is None for a in out)


def test_names():
    assert vsr_fusion.split_name("flashsr_x4+fusion") == "flashsr_x4" and vsr_fusion.split_name("vsr_x4") is None
    assert vsr_fusion.sr_scale("flashsr_x2+fusion") == 2 and vsr_fusion.sr_scale("flashsr_x4") == 4


@pytest.mark.parametrize("factor", [1, 2])
def test_video_job_with_fusion(tmp_path, factor):
    """serve.video_job with 'flashsr_x2+fusion': every source frame fused (also before interpolation at x2)."""
    from serve.video_io import make_test_clip, read_frames
    from serve.video_job import process_video

    src = tmp_path / "in.mp4"
    make_test_clip(src, _frames(5, 8, h=32, w=48))
    info = process_video(src, tmp_path / "out.mp4", sr_model="flashsr_x2+fusion", fps_factor=factor,
                         interp_model="flowinterp", backend="torch-cpu")
    assert info["sr_model"] == "flashsr_x2+fusion" and info["frames_out"] == 5 * factor
    frames = list(read_frames(tmp_path / "out.mp4"))
    assert len(frames) == 5 * factor and frames[0].shape == (64, 96, 3)
    with pytest.raises(InputError, match="per-frame SR model"):
        process_video(src, tmp_path / "bad.mp4", sr_model="vsr_x4+fusion", backend="torch-cpu")


def test_serve_video_cli_runs_fusion(tmp_path):
    from serve.video import main
    from serve.video_io import make_test_clip, read_frames

    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_test_clip(src, _frames(4, 9, h=32, w=48))
    assert main([str(src), "--sr", "flashsr_x2+fusion", "--backend", "torch-cpu", "--out", str(out)]) == 0
    frames = list(read_frames(out))
    assert len(frames) == 4 and frames[0].shape == (64, 96, 3)


def test_the_video_tab_offers_fusion_and_stops_it(tmp_path, stop_video_job_at_frame_2):
    from ui import video_tab

    assert ("Video SR (multi-frame, 7-frame fusion) x4: flashsr_x4", "flashsr_x4+fusion") in video_tab.vsr_choices()
    target = tmp_path / "out" / "out.mp4"
    seen = stop_video_job_at_frame_2(_frames(6, 11, h=32, w=48), target, "flashsr_x2+fusion", "torch-cpu")
    assert seen == [1, 2] and not list(target.parent.iterdir())


def test_evaluate_plans_fusion_rows():
    import argparse

    from evaluate.vsr import plan

    assert "flashsr_x4+fusion" in plan(argparse.Namespace(model=None, scale=4))
    assert plan(argparse.Namespace(model="flashsr_x2+fusion", scale=None)) == ["flashsr_x2+fusion"]
    with pytest.raises(SystemExit, match="not a registered SR model"):
        plan(argparse.Namespace(model="vsr_x4+fusion", scale=None))


def test_video_benchmark_rows_on_real_degradations():
    """evaluate --task vsr --degradation real-medium: sets labelled SET:PRESET, strength models run at
    --strength, and the fusion row beats its per-frame model on a panned clip whose frames carry their
    own noise."""
    from evaluate.vsr import evaluate_video

    clip = [f.astype(np.float32) / 255.0 for f in _frames(5, 12, h=64, w=96)]
    rows = {}
    for name in ("bicubic", "flashsr_real_x2", "flashsr_real_x2+fusion"):
        (row,) = [r for r in evaluate_video(name, 2, {"Tiny": [clip]}, degradation="real-medium", strength=0.5)]
        rows[name] = row
    assert all(r["set"] == "Tiny:real-medium" and r["degradation"] == "real-medium" for r in rows.values())
    assert rows["flashsr_real_x2"]["strength"] == 0.5 and "strength" not in rows["bicubic"]
    assert rows["flashsr_real_x2+fusion"]["psnr_y"] > rows["flashsr_real_x2"]["psnr_y"]
