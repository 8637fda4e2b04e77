"""Video in and out with PyAV: checked probing, streamed decoding, encoding (the CLI is serve.video).

PyAV's wheels bundle FFmpeg with libx264, libx265, libvpx-vp9 and SVT-AV1 (serve.video_encode), so
the default output is H.264 (yuv420p, CRF 18, +faststart) in MP4, which every browser plays. Frames
are decoded one at a time (a generator), never all held. `probe` refuses, with one sentence each,
what cannot be processed: a file that is not video (or audio only), no usable frame rate, an
over-long clip. A variable frame rate is no longer refused: probe notes it (`VideoInfo.vfr`) and the
job (serve.video_job) resamples the frames onto a constant-rate timeline.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np

from .contract import InputError

PathLike = Union[str, os.PathLike]
VFR_TOLERANCE = 0.25  # frame intervals may differ from the median by this fraction (timestamp rounding)
STANDARD_RATES = tuple(Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "48", "50",
                                             "60000/1001", "60", "100", "120000/1001", "120", "240"))


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: Fraction
    frames: int  # counted from the packets (exact for constant-frame-rate files)
    seconds: float
    has_audio: bool
    codec: str
    vfr: Optional[str] = None  # a variable frame rate, described ("frame intervals from 33 to 100 ms")
    start: Fraction = Fraction(0)  # the first frame's timestamp (s): the output starts there
    span: Fraction = Fraction(0)  # last minus first frame timestamp (s)

    def describe(self) -> str:
        rate = f"{float(self.fps):.3g} fps" + (" (variable)" if self.vfr else "")
        return (f"{self.width}x{self.height}, {rate}, {self.frames} frames ({self.seconds:.1f} s), "
                f"{self.codec}{', with audio' if self.has_audio else ''}")


def snap_rate(rate: Fraction, tolerance: float = 0.01) -> Fraction:
    """`rate` as the standard frame rate within `tolerance` (relative) of it, else to 1/1001 precision."""
    rate = Fraction(rate)
    for standard in STANDARD_RATES:
        if abs(rate - standard) <= tolerance * standard:
            return standard
    return rate.limit_denominator(1001)


def _open(path: PathLike):
    import av

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path.name}: file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path.name}: file is empty (0 bytes)")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path.name}: not a readable video file ({exc.__class__.__name__})") from None


def probe(path: PathLike, *, max_seconds: float = 20.0, max_frames: int = 1200,
          max_frame_pixels: Optional[int] = 1920 * 1088) -> VideoInfo:
    """Read the container and every video packet's timestamp (no decoding); raise InputError on bad input.

    `max_frame_pixels=None` (and math.inf for the others) lifts the limits: the CLI has none.
    """
    import av

    name = Path(path).name
    container = _open(path)
    try:
        if not container.streams.video:
            what = "an audio-only file" if container.streams.audio else "a file without a video stream"
            raise InputError(f"{name}: {what}; upload a video")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise InputError(f"{name}: the video stream has no frame size (corrupt file?)")
        if max_frame_pixels is not None and width * height > max_frame_pixels:
            raise InputError(f"{name}: frames are {width}x{height}, over the limit of {max_frame_pixels / 1e6:.1f} MP "
                             "a frame; downscale the video first")
        declared = stream.average_rate or stream.guessed_rate
        rate = declared if declared and float(declared) > 0 else Fraction(30)  # for the length check only
        times = []
        try:
            for packet in container.demux(stream):
                if packet.pts is not None and packet.size:
                    times.append(float(packet.pts * stream.time_base))
                    if len(times) > max_frames:
                        raise InputError(f"{name}: more than {max_frames} frames, over the limit; trim it first")
                    if len(times) / float(rate) > max_seconds + 1e-6:
                        raise InputError(f"{name}: longer than the limit of {max_seconds:g} s; trim it first")
        except av.error.FFmpegError as exc:
            raise InputError(f"{name}: the video data is corrupt ({exc.__class__.__name__})") from None
        if not times:
            raise InputError(f"{name}: no video frames could be read (corrupt or empty stream)")
        if stream.frames and len(times) < stream.frames:  # the index lists frames whose data is missing
            raise InputError(f"{name}: the file is truncated or corrupt (it lists {stream.frames} frames, "
                             f"{len(times)} could be read)")
        times.sort()
        span = Fraction(times[-1] - times[0]).limit_denominator(10 ** 6)
        if not declared or float(declared) <= 0:
            if len(times) < 2 or span <= 0:
                raise InputError(f"{name}: the video declares a frame rate of 0 (or none) and its timestamps "
                                 "give none either, so the output rate cannot be set")
            declared = (len(times) - 1) / span
        vfr = rate_variation(times, declared)
        fps = snap_rate(declared) if vfr else Fraction(declared)
        seconds = float(span + 1 / fps) if vfr else len(times) / float(fps)
        return VideoInfo(width, height, fps, len(times), seconds, bool(container.streams.audio),
                         stream.codec_context.name, vfr, Fraction(times[0]).limit_denominator(10 ** 6), span)
    finally:
        container.close()


def rate_variation(times: list, rate: Fraction) -> Optional[str]:
    """None for a constant frame rate, else a phrase describing how the frame intervals vary."""
    gaps = np.diff(np.asarray(sorted(times), dtype=np.float64))
    if gaps.size < 2:
        return None
    step = 1.0 / float(rate)
    if np.any(gaps <= 0) or np.max(np.abs(gaps - step)) > VFR_TOLERANCE * step:
        return (f"variable frame rate (frame intervals from {gaps.min() * 1000:.1f} to {gaps.max() * 1000:.1f} ms, "
                f"nominal {step * 1000:.1f} ms)")
    return None


def read_frames(path: PathLike, *, with_times: bool = False) -> Iterator:
    """RGB uint8 HxWx3 frames, decoded one at a time; with_times: (frame, timestamp in s as a Fraction)."""
    import av

    name = Path(path).name
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        size = None
        try:
            for frame in container.decode(stream):
                rgb = frame.to_ndarray(format="rgb24")
                if size is None:
                    size = rgb.shape
                elif rgb.shape != size:
                    raise InputError(f"{name}: the frame size changes mid-stream ({size[1]}x{size[0]} -> "
                                     f"{rgb.shape[1]}x{rgb.shape[0]}); not supported")
                if with_times:
                    when = None if frame.pts is None else Fraction(frame.pts) * (frame.time_base or stream.time_base)
                    yield rgb, when
                else:
                    yield rgb
        except av.error.FFmpegError as exc:
            raise InputError(f"{name}: decoding failed partway ({exc.__class__.__name__}); "
                             "the file is corrupt") from None
    finally:
        container.close()


def audio_format(path: PathLike) -> Optional[tuple]:
    """(sample rate, layout) of the first audio stream, or None when there is none."""
    import av

    with av.open(str(path)) as src:
        if not src.streams.audio:
            return None
        ctx = src.streams.audio[0].codec_context
        return (ctx.sample_rate or 48000, "stereo" if (ctx.channels or 2) > 1 else "mono")


class Mp4Writer:
    """H.264 (libx264, yuv420p, CRF 18) MP4 writer for RGB uint8 frames; odd sizes are edge-padded to even.

    `audio=(rate, layout)` adds an AAC track (streams must exist before the first frame is written);
    fill it with `copy_audio` or `write_audio` after the video.
    """

    def __init__(self, path: PathLike, fps: Fraction, width: int, height: int, crf: int = 18,
                 audio: Optional[tuple] = None):
        import av

        self.path = Path(path)
        self.size = (int(width), int(height))
        self.fps = Fraction(fps).limit_denominator(1001 * 1000)
        self.container = av.open(str(self.path), mode="w", format="mp4", options={"movflags": "+faststart"})
        self.stream = self.container.add_stream("libx264", rate=self.fps)
        # what is encoded: odd sizes gain one edge-padded row/column (yuv420p needs even sides)
        self.written_size = (int(width) + int(width) % 2, int(height) + int(height) % 2)
        self.stream.width, self.stream.height = self.written_size
        self.stream.pix_fmt = "yuv420p"
        self.stream.codec_context.time_base = 1 / self.fps
        self.stream.options = {"crf": str(crf), "preset": "veryfast"}
        self.audio = None
        if audio:
            self.audio = self.container.add_stream("aac", rate=int(audio[0]))
            self.audio.layout = audio[1]
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        from .video_encode import encode_rgb

        encode_rgb(self, rgb)

    def copy_audio(self, source: PathLike) -> bool:
        """Re-encode the source's first audio stream into the AAC track; False when there is nothing to copy."""
        import av

        if self.audio is None:
            return False
        with av.open(str(source)) as src:
            if not src.streams.audio:
                return False
            self.write_audio(src.decode(src.streams.audio[0]))
        return True

    def write_audio(self, frames) -> None:
        """Encode av.AudioFrames (any format/rate) into the AAC track."""
        import av

        resampler = av.AudioResampler(format="fltp", layout=self.audio.layout,
                                      rate=self.audio.codec_context.sample_rate)
        for frame in frames:
            frame.pts = None
            for chunk in resampler.resample(frame):
                self.container.mux(self.audio.encode(chunk))
        for chunk in resampler.resample(None):
            self.container.mux(self.audio.encode(chunk))
        self.container.mux(self.audio.encode(None))

    def finish_video(self) -> None:
        self.container.mux(self.stream.encode(None))

    def close(self) -> None:
        self.container.close()


def stream_summary(path: PathLike) -> dict:
    """fps, frame count, codec and whether audio is present, as a reader sees the file."""
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0] if c.streams.video else None
        return {"fps": float(v.average_rate) if v is not None and v.average_rate else None,
                "codec": v.codec_context.name if v is not None else None,
                "width": v.codec_context.width if v is not None else None,
                "height": v.codec_context.height if v is not None else None,
                "has_audio": bool(c.streams.audio), "audio_codec": c.streams.audio[0].codec_context.name
                if c.streams.audio else None}


def make_test_clip(path: PathLike, frames: list, fps: Fraction = Fraction(10), audio_seconds: Optional[float] = None):
    """Write RGB uint8 frames (and optionally a 440 Hz tone) as an MP4: fixtures for tests and demos."""
    import av

    writer = Mp4Writer(path, fps, frames[0].shape[1], frames[0].shape[0],
                       audio=(16000, "mono") if audio_seconds else None)
    for f in frames:
        writer.write(f)
    writer.finish_video()
    if audio_seconds:
        samples = np.sin(np.arange(int(16000 * audio_seconds)) * 2 * np.pi * 440 / 16000).astype(np.float32)
        chunks = []
        for i in range(0, samples.size, 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, i: i + 1024], format="fltp", layout="mono")
            frame.sample_rate = 16000
            chunks.append(frame)
        writer.write_audio(chunks)
    writer.close()
