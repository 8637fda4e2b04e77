"""Video jobs (serve.video_job): streams kept, VFR converted, target frame rates, encoders, duplicate frames,
resume after a kill, and the CLI. Every clip is made here with PyAV: 64x48, about a second."""
from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from common.paths import PROJECT_ROOT
from serve.contract import InputError

W, H = 64, 48
INTERP = {"backend": "torch-cpu"}  # the shipped flowinterp weights


def _frame(i: int) -> np.ndarray:
    """A bright bar moving 3 px a frame over a gradient: motion to interpolate, easy to locate."""
    img = np.tile(np.linspace(20, 120, W, dtype=np.float32), (H, 1))
    img[:, (3 * i) % (W - 6): (3 * i) % (W - 6) + 6] = 240
    return np.repeat(img[..., None], 3, axis=2).astype(np.uint8)


def _tone(out, stream, rate: int, layout: str, seconds: float, pitch: float) -> None:
    import av

    channels = 1 if layout == "mono" else 2
    size = stream.codec_context.frame_size or 1024
    fmt = stream.codec_context.codec.audio_formats[0].name
    pts, total = 0, int(rate * seconds)
    while pts < total:
        t = (np.arange(pts, pts + size) / rate).astype(np.float32)
        wave = np.tile(0.2 * np.sin(2 * np.pi * pitch * t), (channels, 1))
        if fmt == "s16":
            frame = av.AudioFrame.from_ndarray((wave.T.reshape(1, -1) * 32767).astype(np.int16), format="s16",
                                               layout=layout)
        else:
            frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, pts, Fraction(1, rate)
        out.mux(stream.encode(frame))
        pts += size
    out.mux(stream.encode(None))


def make_clip(path, frames=10, fps=10, audio=(), subtitles=(), pts=None, tb=None, frame_fn=_frame):
    """A video (H.264) with audio tracks [(codec, language)] and SRT cues [(start, end, text)], any container."""
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        tb = tb or Fraction(1, fps)
        video.codec_context.time_base = tb
        tracks = []
        for codec, lang in audio:
            stream = out.add_stream(codec, rate=16000 if codec != "libopus" else 48000)
            stream.layout = "mono"
            stream.metadata["language"] = lang
            tracks.append(stream)
        subs = out.add_mux_stream("subrip") if subtitles else None
        if subs is not None:
            subs.metadata["language"] = "eng"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_fn(i), format="rgb24")
            frame.pts, frame.time_base = (pts[i] if pts else i), tb
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        seconds = (pts[-1] * tb if pts else Fraction(frames, fps)) + Fraction(1, fps)
        for n, stream in enumerate(tracks):
            _tone(out, stream, stream.codec_context.sample_rate, "mono", float(seconds), 300 + 200 * n)
        for start, end, text in subtitles:
            packet = av.Packet(text.encode())
            packet.stream, packet.time_base = subs, Fraction(1, 1000)
            packet.pts = packet.dts = int(start * 1000)
            packet.duration = int((end - start) * 1000)
            out.mux(packet)
    return path


def _packets(path, kind: str, n: int):
    """The payloads of the n-th stream of a kind (audio/subtitle), and its codec name."""
    import av

    from serve.video_streams import _codec_name

    with av.open(str(path)) as c:
        stream = [s for s in c.streams if s.type == kind][n]
        return [bytes(p) for p in c.demux(stream) if p.size], _codec_name(stream), stream.metadata.get("language")


def _bar(frame: np.ndarray) -> float:
    """Where the bright bar is (column centroid of what is brighter than the background)."""
    weight = np.clip(frame[:, :, 0].mean(axis=0) - 130.0, 0, None)
    return float((weight * np.arange(frame.shape[1])).sum() / max(weight.sum(), 1e-6))


def _frames(path):
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = [(f.to_ndarray(format="rgb24"), f.time) for f in c.decode(stream)]
        return frames, stream.average_rate


def test_every_audio_and_subtitle_stream_kept(tmp_path):
    from serve.video_job import process_video

    src = make_clip(tmp_path / "in.mkv", audio=[("aac", "eng"), ("pcm_s16le", "fra")],
                    subtitles=[(0.1, 0.4, "hello"), (0.5, 0.9, "world")])
    info = process_video(src, tmp_path / "out.mp4", encoder="h264")
    aac_in, _, _ = _packets(src, "audio", 0)
    aac_out, codec, lang = _packets(tmp_path / "out.mp4", "audio", 0)
    assert codec == "aac" and lang == "eng" and aac_out == aac_in  # stream copy: the same bytes
    pcm_out, codec, lang = _packets(tmp_path / "out.mp4", "audio", 1)
    assert codec == "aac" and lang == "fra" and len(pcm_out) > 5  # MP4 cannot hold PCM: re-encoded, and said
    subs, codec, lang = _packets(tmp_path / "out.mp4", "subtitle", 0)
    assert codec == "mov_text" and lang == "eng" and [s[2:] for s in subs if len(s) > 2] == [b"hello", b"world"]
    assert info["streams"] == ["audio #1 aac (eng): copied",
                               "audio #2 pcm_s16le (fra): re-encoded to AAC (MP4 cannot hold pcm_s16le)",
                               "subtitle #1 subrip (eng): converted to mov_text (MP4 holds only mov_text text "
                               "subtitles)"]
    assert info["frames_out"] == 10 and info["audio"] is True

    info = process_video(src, tmp_path / "out.mkv")  # Matroska holds them all: every stream copied
    assert all(note.endswith("copied") for note in info["streams"]) and len(info["streams"]) == 3
    assert _packets(tmp_path / "out.mkv", "audio", 1)[0] == _packets(src, "audio", 1)[0]
    assert _packets(tmp_path / "out.mkv", "subtitle", 0)[0] == [b"hello", b"world"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv", "out.mkv", "out.mp4"]  # no work folder left


def test_variable_frame_rate_is_converted_and_said(tmp_path):
    from serve.video import probe
    from serve.video_job import process_video

    vfr = make_clip(tmp_path / "vfr.mkv", frames=6, fps=10, pts=[0, 10, 20, 50, 55, 90], tb=Fraction(1, 100))
    assert "variable frame rate" in probe(vfr).vfr
    info = process_video(vfr, tmp_path / "cfr.mp4", interp_model=None)  # no model: the nearest frame
    assert info["vfr"] and "converted to a constant 10 fps" in info["notes"][0]
    frames, rate = _frames(tmp_path / "cfr.mp4")
    assert rate == 10 and len(frames) == info["frames_out"] == 10  # 0.9 s + one frame interval
    gaps = np.diff([t for _, t in frames])
    assert np.allclose(gaps, 0.1, atol=1e-3)
    # at 0.3 s and 0.4 s no source frame exists: the nearest ones (0.2 s, then 0.5 s) stand in
    assert np.abs(frames[3][0].astype(int) - frames[2][0]).mean() < 2
    assert np.abs(frames[4][0].astype(int) - frames[5][0]).mean() < 10


def test_target_fps_24_to_60_keeps_the_duration(tmp_path):
    from serve.video_job import process_video

    src = make_clip(tmp_path / "in.mp4", frames=12, fps=24, audio=[("aac", "eng")])
    computed = []
    info = process_video(src, tmp_path / "out.mp4", target_fps=60, progress=lambda d, n: computed.append(d),
                         **INTERP)
    frames, rate = _frames(tmp_path / "out.mp4")
    assert rate == 60 and len(frames) == info["frames_out"] == 30 and info["duration_s"] == 0.5
    assert abs(frames[-1][1] - 29 / 60) < 1e-3
    # output frame 5 is at 5/60 s = source frame 2 exactly: copied, not interpolated (1 in 5 is a copy);
    # the last two (at source frames 11.2 and 11.6) hold the last frame
    assert info["frames_computed"] == 30 - 6 - 2
    source, _ = _frames(src)
    assert np.abs(frames[5][0].astype(int) - source[2][0]).mean() < 2
    bar = [_bar(f) for f, _ in frames[:10]]  # source frame i has the bar at 3i px; output frame j at 1.2j
    assert np.all(np.diff(bar) > 0.3) and abs(bar[5] - bar[0] - 6) < 1
    assert computed[-1] == 30 and info["audio"] is True


@pytest.mark.parametrize("call, message", [
    (dict(encoder="mpeg2"), "unknown encoder 'mpeg2': choose one of h264, h265, vp9, av1"),
    (dict(target_fps=0), "target frame rate must be from 1 to 240 fps, not 0"),
    (dict(target_fps=1000), "target frame rate must be from 1 to 240 fps, not 1000"),
    (dict(crf=80), "CRF for h264 must be a whole number from 0 to 51"),
    (dict(fps_factor=2, target_fps=60), "not both"),
    (dict(dedup="maybe"), "duplicates must be one of off, skip, replace"),
])
def test_bad_settings_get_clear_messages(tmp_path, call, message):
    from serve.video_job import process_video

    src = make_clip(tmp_path / "in.mp4", frames=4)
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        process_video(src, tmp_path / "out" / "o.mp4", **call)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_container_must_hold_the_codec(tmp_path):
    from serve.video_encode import available_encoders, choose_encoder

    with pytest.raises(InputError, match="WEBM file cannot hold h264"):
        choose_encoder("h264", out_path=tmp_path / "o.webm")
    with pytest.raises(InputError, match="must end in"):
        choose_encoder("h264", out_path=tmp_path / "o.avi")
    assert available_encoders()[0] == "h264"


@pytest.mark.parametrize("encoder, suffix, codec", [("h265", ".mp4", "hevc"), ("vp9", ".webm", "vp9"),
                                                    ("av1", ".mp4", "av1")])
def test_each_encoder_writes_a_playable_file(tmp_path, encoder, suffix, codec):
    from serve.video_encode import available_encoders
    from serve.video_job import process_video

    if encoder not in available_encoders():
        pytest.skip(f"this PyAV build has no {encoder} encoder")
    src = make_clip(tmp_path / "in.mp4", frames=5, audio=[("aac", "eng")])
    info = process_video(src, tmp_path / f"out{suffix}", encoder=encoder, crf=30)
    frames, rate = _frames(tmp_path / f"out{suffix}")
    assert len(frames) == 5 and rate == 10 and info["encoder"] == encoder
    assert _packets(tmp_path / f"out{suffix}", "audio", 0)[1] == ("opus" if suffix == ".webm" else "aac")
    from serve.video_streams import stream_report

    assert stream_report(tmp_path / f"out{suffix}")[0]["codec"] == codec


def test_repeated_frames_skipped_or_replaced(tmp_path):
    from serve.video_job import process_video

    src = make_clip(tmp_path / "twos.mp4", frames=12, fps=12, frame_fn=lambda i: _frame(i // 2))  # "on twos"
    skip = process_video(src, tmp_path / "skip.mp4", fps_factor=2, **INTERP)
    assert skip["duplicates"] == [1, 3, 5, 7, 9, 11]
    assert skip["frames_computed"] == 5  # one in-between per changing pair; none across a repeat
    replace = process_video(src, tmp_path / "replace.mp4", fps_factor=2, dedup="replace", **INTERP)
    # all but the 6 kept frames and the last 3 (after source frame 10, the last kept one: held)
    assert replace["frames_computed"] == 24 - 6 - 3
    assert "replaced by interpolated frames (6 left out)" in replace["notes"][0]
    frames, _ = _frames(tmp_path / "replace.mp4")
    bar = [_bar(f) for f, _ in frames[:20]]
    assert np.all(np.diff(bar) > 0.3)  # the repeats became motion: the bar moves on every frame


def test_resume_after_a_kill_skips_finished_segments(tmp_path, monkeypatch):
    import serve.interp_core
    import serve.video_job
    from serve.video_job import process_video

    src = make_clip(tmp_path / "in.mp4", frames=12, audio=[("aac", "eng")])
    out = tmp_path / "out.mp4"
    calls = []
    real = serve.interp_core.interpolate_arrays
    monkeypatch.setattr(serve.video_job, "interpolate_arrays",
                        lambda runner, a, b, times: calls.append(len(times)) or real(runner, a, b, times))

    def killed(done, total):
        if done > 12:  # two segments of 6 finished: die in the third
            raise KeyboardInterrupt

    job = dict(fps_factor=2, segment_frames=6, resume=True, **INTERP)
    with pytest.raises(KeyboardInterrupt):
        process_video(src, out, progress=killed, **job)
    work = tmp_path / ".out.mp4.work"
    assert sorted(p.name for p in work.iterdir()) == ["job.json", "seg_00000.mp4", "seg_00001.mp4"]
    assert not out.exists() and sum(calls) >= 6
    calls.clear()
    info = process_video(src, out, **job)
    assert info["segments"] == 4 and info["segments_reused"] == 2 and "resumed: 2 of 4" in info["notes"][0]
    assert sum(calls) == info["frames_computed"] == 6 - 1  # only segments 3 and 4 ran (the last frame is held)
    assert info["frames_encoded"] == 12 and not work.exists()
    fresh = process_video(src, tmp_path / "fresh.mp4", **{**job, "resume": False})  # the same, never killed
    resumed, _ = _frames(out)
    again, _ = _frames(tmp_path / "fresh.mp4")
    assert len(resumed) == len(again) == fresh["frames_out"] == 24
    # the same frames: oneDNN may round a few pixels differently run to run (seen: 0.09 of 255 on average)
    assert max(np.abs(a.astype(int) - b).mean() for (a, _), (b, _) in zip(resumed, again)) < 0.5
    assert _packets(out, "audio", 0)[0] == _packets(src, "audio", 0)[0]
    # other settings do not reuse the segments of this job
    with pytest.raises(KeyboardInterrupt):
        process_video(src, out, progress=killed, **job)
    info = process_video(src, out, **{**job, "encoder": "h264", "crf": 25})
    assert info["segments_reused"] == 0
    with pytest.raises(KeyboardInterrupt):  # nor does another precision (job.json records backend and precision)
        process_video(src, out, progress=killed, **job)
    assert process_video(src, out, **{**job, "precision": "auto"})["segments_reused"] == 0
    with pytest.raises(ValueError, match="unknown backend"):  # refused before any segment: no work folder left
        process_video(src, tmp_path / "bad.mp4", **{**job, "sr_model": "flashsr_x2", "backend": "bogus"})
    assert not (tmp_path / ".bad.mp4.work").exists()


@pytest.mark.slow
def test_sr_at_the_original_rate_and_cli(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(PROJECT_ROOT)}
    src = make_clip(tmp_path / "in.mkv", frames=4, audio=[("aac", "eng")], subtitles=[(0.0, 0.3, "hi")])
    done = subprocess.run([sys.executable, "-m", "serve.video", str(src), "--sr", "flashsr_x2", "--encoder", "h264",
                           "--crf", "20", "--backend", "onnx", "--out", str(tmp_path / "big.mp4")], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "audio #1 aac (eng): copied" in done.stdout and "converted to mov_text" in done.stdout
    frames, rate = _frames(tmp_path / "big.mp4")
    assert len(frames) == 4 and rate == 10 and frames[0][0].shape == (2 * H, 2 * W, 3)
    bad = subprocess.run([sys.executable, "-m", "serve.video", str(src), "--target-fps", "1000"], cwd=PROJECT_ROOT,
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "target frame rate must be from 1 to 240 fps" in bad.stderr


def test_video_tab_options(upload_dir):
    import gradio as gr

    from ui import video_tab

    src = make_clip(upload_dir / "clip.mkv", frames=6, audio=[("aac", "eng")], subtitles=[(0.0, 0.3, "hi")])
    video = {"path": str(src), "orig_name": "clip.mkv"}
    for args, message in [(dict(target_fps=0.5), "'target_fps' must be 0 .use fps_factor. or from 1 to 240"),
                          (dict(target_fps=500), "'target_fps' must be from 0 to 240"),
                          (dict(encoder="prores"), "'encoder' must be one of: h264"),
                          (dict(crf="best"), "'crf' must be a whole number"),
                          (dict(duplicates=True), "'duplicates' must be one of"),
                          (dict(fps_factor="2", target_fps=60), "either a frame-rate factor or a target")]:
        with pytest.raises(gr.Error, match=message):
            video_tab.process_video(video, **{"fps_factor": "1", "sr_model": "none", **args}, progress=None)
    if not video_tab.interpolation_models():
        pytest.skip("no interpolation model")
    out, text, details = video_tab.process_video(video, "1", "none", "torch-cpu", None, 25, "vp9", 40, "yuv420p",
                                                 "skip", progress=lambda *a, **k: None)
    frames, rate = _frames(out)
    assert out.endswith("_25fps_vp9.mp4") and rate == 25 and len(frames) == 15 and details["encoder"] == "vp9"
    assert "audio #1 aac (eng): copied" in text and "converted to mov_text" in text


def test_video_tab_runs_multi_frame_fusion_and_checks_its_size_limit(upload_dir, monkeypatch):
    """The tab's "Video SR (multi-frame, 7-frame fusion)" choice end to end, and its frame-size check
    before the job starts."""
    import gradio as gr

    from ui import video_tab

    video = {"path": str(make_clip(upload_dir / "clip.mp4", frames=5)), "orig_name": "clip.mp4"}
    out, text, details = video_tab.process_video(video, "1", "flashsr_x2+fusion", "torch-cpu",
                                                 progress=lambda *a, **k: None)
    frames, _ = _frames(out)
    assert len(frames) == 5 and frames[0][0].shape[:2] == (2 * H, 2 * W)
    assert details["sr_model"] == "flashsr_x2+fusion" and out.endswith("_flashsr_x2_fusion.mp4")  # no '+' in a URL
    monkeypatch.setattr(video_tab, "FUSION_MAX_OUTPUT_PIXELS", 4 * W * H - 1)
    with pytest.raises(gr.Error, match="multi-frame fusion's limit"):
        video_tab.process_video(video, "1", "flashsr_x2+fusion", "torch-cpu", progress=lambda *a, **k: None)


def test_the_video_cli_passes_the_precision_through(monkeypatch, tmp_path):
    """`python -m serve.video --precision int8` reaches process_video (the CPU-speed choice, #15)."""
    import serve.video as video_cli

    seen = {}

    def fake_process_video(source, out, **kwargs):
        seen.update(kwargs)
        return {"output": str(out), "frames_out": 0, "fps_out": 25.0, "codec": "h264", "input": str(source),
                "seconds": 0.0, "notes": [], "streams": []}

    monkeypatch.setattr(video_cli, "process_video", fake_process_video)
    assert video_cli.main([str(tmp_path / "in.mp4"), "--sr", "flashsr_x2", "--precision", "int8"]) == 0
    assert seen["precision"] == "int8" and seen["sr_model"] == "flashsr_x2"
    assert video_cli.main([str(tmp_path / "in.mp4")]) == 0 and seen["precision"] == "fp32"
