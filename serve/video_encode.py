"""Video encoders and containers: H.264 / H.265 / VP9 / AV1 with CRF and pixel format, checked up front.

    settings = choose_encoder("h265", crf=20, pix_fmt="yuv420p", out_path="clip.mp4")
    writer = VideoWriter("part.mp4", settings, fps=Fraction(60), width=640, height=360)

Only encoders present in PyAV's bundled FFmpeg are offered (`available_encoders()`, from
`av.codecs_available`). The container follows the output's suffix: .mp4 (default; holds all four
codecs, so audio is copied as often as possible), .mkv (holds anything) or .webm (VP9 and AV1 only).
yuv420p needs even sides: an odd width or height gains one edge-padded column/row.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from .contract import InputError

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class Encoder:
    name: str  # what users type: h264, h265, vp9, av1
    library: str  # the FFmpeg encoder
    codec: str  # the codec name a container lists (av.OutputContainer.supported_codecs)
    default_crf: int
    max_crf: int
    options: Dict[str, str] = field(default_factory=dict)  # speed settings: a few times real time on a CPU
    tag: Optional[str] = None  # MP4 sample entry (hvc1: what Apple players need for H.265)


ENCODERS: Dict[str, Encoder] = {e.name: e for e in (
    Encoder("h264", "libx264", "h264", 18, 51, {"preset": "veryfast"}),
    Encoder("h265", "libx265", "hevc", 20, 51, {"preset": "veryfast", "x265-params": "log-level=error"}, tag="hvc1"),
    Encoder("vp9", "libvpx-vp9", "vp9", 31, 63, {"deadline": "good", "cpu-used": "5", "row-mt": "1", "b": "0"}),
    Encoder("av1", "libsvtav1", "av1", 30, 63, {"preset": "10"}),
)}
PIX_FMTS = ("yuv420p", "yuv444p", "yuv420p10le")
CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".webm": "webm", ".mov": "mov"}
DEFAULT_ENCODER, DEFAULT_PIX_FMT = "h264", "yuv420p"


def available_encoders() -> List[str]:
    """The ENCODERS whose FFmpeg encoder this PyAV build has."""
    import av

    return [name for name, enc in ENCODERS.items() if enc.library in av.codecs_available]


def _pix_fmts(library: str) -> List[str]:
    import av

    formats = av.codec.Codec(library, "w").video_formats or []
    return [f.name for f in formats]


@dataclass(frozen=True)
class EncoderSettings:
    encoder: Encoder
    crf: int
    pix_fmt: str
    container: str  # FFmpeg format name: mp4, matroska, webm, mov

    def describe(self) -> str:
        enc = self.encoder
        box = {"matroska": "MKV"}.get(self.container, self.container.upper())
        return f"{enc.codec} ({enc.library}, {self.pix_fmt}, CRF {self.crf}) in {box}"

    def as_dict(self) -> dict:
        return {"encoder": self.encoder.name, "crf": self.crf, "pix_fmt": self.pix_fmt, "container": self.container}


def container_for(out_path: PathLike) -> str:
    suffix = Path(out_path).suffix.lower()
    if suffix not in CONTAINERS:
        raise InputError(f"{Path(out_path).name}: the output must end in {', '.join(CONTAINERS)} "
                         f"(got '{suffix or 'no suffix'}')")
    return CONTAINERS[suffix]


def choose_encoder(name: str = DEFAULT_ENCODER, crf: Optional[int] = None, pix_fmt: str = DEFAULT_PIX_FMT,
                   out_path: PathLike = "out.mp4") -> EncoderSettings:
    """Validated settings; InputError names what is wrong (unknown or missing encoder, CRF, format, container)."""
    import av

    key = str(name).lower().replace(".", "").replace("hevc", "h265").replace("avc", "h264")
    if key not in ENCODERS:
        raise InputError(f"unknown encoder '{name}': choose one of {', '.join(ENCODERS)} "
                         f"(this machine has {', '.join(available_encoders()) or 'none'})")
    enc = ENCODERS[key]
    if enc.library not in av.codecs_available:
        raise InputError(f"encoder '{key}' needs {enc.library}, which this FFmpeg build lacks; available: "
                         f"{', '.join(available_encoders()) or 'none'}")
    crf = enc.default_crf if crf is None else crf
    if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)) or not 0 <= crf <= enc.max_crf:
        raise InputError(f"CRF for {key} must be a whole number from 0 to {enc.max_crf} (lower = better), not {crf!r}")
    if pix_fmt not in PIX_FMTS:
        raise InputError(f"pixel format must be one of {', '.join(PIX_FMTS)}, not '{pix_fmt}'")
    if pix_fmt not in _pix_fmts(enc.library):
        offered = [p for p in PIX_FMTS if p in _pix_fmts(enc.library)]
        raise InputError(f"{enc.library} cannot write {pix_fmt}; it takes {', '.join(offered)}")
    container = container_for(out_path)
    with av.open(os.devnull, "w", format=container) as probe:
        if enc.codec not in probe.supported_codecs:
            raise InputError(f"{Path(out_path).name}: a {container.upper()} file cannot hold {key}; "
                             f"use .mp4 or .mkv")
    return EncoderSettings(enc, int(crf), pix_fmt, container)


def even_size(width: int, height: int, pix_fmt: str) -> Tuple[int, int]:
    """The encoded size: 4:2:0 formats need even sides (odd ones gain one edge-padded column/row)."""
    if "420" not in pix_fmt:
        return int(width), int(height)
    return int(width) + int(width) % 2, int(height) + int(height) % 2


def encode_rgb(writer, rgb: np.ndarray) -> None:
    """Encode one RGB frame (uint8, or float in [0,1]) as the next frame of `writer` (VideoWriter or
    video_io.Mp4Writer: size, written_size, frames, stream, container); odd sides are edge-padded."""
    import av

    if (rgb.shape[1], rgb.shape[0]) != writer.size:
        raise ValueError(f"frame of {rgb.shape[1]}x{rgb.shape[0]} for a {writer.size[0]}x{writer.size[1]} video")
    if rgb.dtype != np.uint8:
        rgb = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    pad_h, pad_w = writer.written_size[1] - rgb.shape[0], writer.written_size[0] - rgb.shape[1]
    if pad_h or pad_w:
        rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[..., :3]), format="rgb24")
    frame.pts = writer.frames
    frame.time_base = writer.stream.codec_context.time_base
    writer.container.mux(writer.stream.encode(frame))
    writer.frames += 1


class VideoWriter:
    """Encode RGB uint8 (or float [0,1]) frames into a video-only file at a constant `fps`."""

    def __init__(self, path: PathLike, settings: EncoderSettings, fps: Fraction, width: int, height: int,
                 *, faststart: bool = False):
        import av

        self.path, self.settings = Path(path), settings
        self.size = (int(width), int(height))
        self.fps = Fraction(fps).limit_denominator(1001 * 1000)
        options = {"movflags": "+faststart"} if faststart and settings.container in ("mp4", "mov") else {}
        self.container = av.open(str(self.path), mode="w", format=settings.container, options=options)
        enc = settings.encoder
        self.stream = self.container.add_stream(enc.library, rate=self.fps)
        self.written_size = even_size(width, height, settings.pix_fmt)
        self.stream.width, self.stream.height = self.written_size
        self.stream.pix_fmt = settings.pix_fmt
        self.stream.codec_context.time_base = 1 / self.fps
        if enc.tag and settings.container in ("mp4", "mov"):
            self.stream.codec_context.codec_tag = enc.tag
        self.stream.options = {**enc.options, "crf": str(settings.crf)}
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        encode_rgb(self, rgb)

    def finish(self) -> None:
        self.container.mux(self.stream.encode(None))

    def close(self) -> None:
        self.container.close()
