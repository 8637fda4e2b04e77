"""Every audio and subtitle stream of the source, carried into the output: copied where the container allows.

    plan = plan_streams("in.mkv", "mp4")           # what happens to each stream, and why (plan[i].note)
    assemble(out_tmp, segments, fps, "in.mkv", plan, settings, start_seconds)

Stream copy (no re-encode) is used whenever the output container holds the codec: MP4 takes AAC,
MP3, AC-3, E-AC-3, ALAC, Opus and FLAC audio and mov_text subtitles; WebM takes Opus/Vorbis and
WebVTT; Matroska takes everything. Otherwise audio is re-encoded (AAC for MP4/MOV, Opus for WebM)
and text subtitles (SRT, ASS, WebVTT, mov_text) are converted to the container's text format;
bitmap subtitles (PGS, DVD) cannot be converted to text and are left out of MP4/WebM, which the plan
says. The final file is built by remuxing the encoded video segments (no re-encode) interleaved with
the source's packets, all shifted so the first video frame is at t = 0.
"""
from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator, List, Optional, Sequence, Tuple, Union

from .video_encode import EncoderSettings

PathLike = Union[str, os.PathLike]
# what each container holds and players play (a muxer may accept more, e.g. PCM or Vorbis in MP4, that few play)
AUDIO_COPY = {"mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
              "mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
              "webm": {"opus", "vorbis"}, "matroska": None}  # None: whatever the muxer supports
AUDIO_ENCODER = {"mp4": ("aac", "AAC"), "mov": ("aac", "AAC"), "webm": ("libopus", "Opus"),
                 "matroska": ("aac", "AAC")}
TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"}
SUBTITLE_COPY = {"mp4": {"mov_text"}, "mov": {"mov_text"}, "webm": {"webvtt"},
                 "matroska": {"subrip", "srt", "ass", "ssa", "webvtt", "dvd_subtitle", "hdmv_pgs_subtitle",
                              "dvb_subtitle"}}
DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
SUBTITLE_ENCODER = {"mp4": "mov_text", "mov": "mov_text", "webm": "webvtt", "matroska": "srt"}


@dataclass
class StreamPlan:
    index: int  # the source stream's index
    kind: str  # audio or subtitle
    codec: str
    action: str  # copy, encode or drop
    target: Optional[str]  # the encoder, when re-encoding
    note: str  # one phrase for the result info: "audio #1 aac (eng): copied"


def _codec_name(stream) -> str:
    ctx = stream.codec_context
    if ctx is None:
        return "unknown"
    name = ctx.codec.name if ctx.codec is not None else ctx.name
    return {"mp3float": "mp3", "libopus": "opus", "libdav1d": "av1", "srt": "subrip"}.get(name, name)


def plan_streams(source: PathLike, container: str, *, keep_audio: bool = True,
                 keep_subtitles: bool = True) -> List[StreamPlan]:
    """Decide copy / re-encode / drop for every audio and subtitle stream of `source`."""
    import av

    upper = container.upper() if container != "matroska" else "MKV"
    plans = []
    with av.open(str(source)) as src, av.open(os.devnull, "w", format=container) as probe:
        supported = probe.supported_codecs
        counts = {"audio": 0, "subtitle": 0}
        for stream in src.streams:
            if stream.type not in counts:
                continue
            counts[stream.type] += 1
            codec = _codec_name(stream)
            lang = stream.metadata.get("language")
            label = f"{stream.type} #{counts[stream.type]} {codec}" + (f" ({lang})" if lang and lang != "und" else "")
            if stream.type == "audio":
                allowed = AUDIO_COPY[container]
                if not keep_audio:
                    plans.append(StreamPlan(stream.index, "audio", codec, "drop", None, f"{label}: left out (asked)"))
                elif codec in supported and (allowed is None or codec in allowed):
                    plans.append(StreamPlan(stream.index, "audio", codec, "copy", None, f"{label}: copied"))
                else:
                    encoder, shown = AUDIO_ENCODER[container]
                    plans.append(StreamPlan(stream.index, "audio", codec, "encode", encoder,
                                            f"{label}: re-encoded to {shown} ({upper} cannot hold {codec})"))
            else:
                if not keep_subtitles:
                    plans.append(StreamPlan(stream.index, "subtitle", codec, "drop", None,
                                            f"{label}: left out (asked)"))
                elif codec in SUBTITLE_COPY[container] and codec in supported:
                    plans.append(StreamPlan(stream.index, "subtitle", codec, "copy", None, f"{label}: copied"))
                elif codec in TEXT_SUBTITLES:
                    target = SUBTITLE_ENCODER[container]
                    plans.append(StreamPlan(stream.index, "subtitle", codec, "encode", target,
                                            f"{label}: converted to {target} ({upper} holds only {target} text "
                                            "subtitles)"))
                else:
                    plans.append(StreamPlan(stream.index, "subtitle", codec, "drop", None,
                                            f"{label}: left out ({upper} cannot hold {codec} bitmap subtitles; "
                                            "write .mkv to keep them)"))
    return plans


def _copy_stream(out, template, codec: str):
    """An output stream for stream copy: from the template, or bare when no encoder shares the decoder's name."""
    from av.codec.codec import UnknownCodecError

    try:
        stream = out.add_stream_from_template(template)
    except UnknownCodecError:  # e.g. AV1 decoded by libdav1d, MP3 by mp3float
        ctx = template.codec_context
        if template.type == "video":
            stream = out.add_mux_stream(codec, width=ctx.width, height=ctx.height)
        else:
            stream = out.add_mux_stream(codec)
    return stream


def _copy_metadata(stream, template) -> None:
    for key, value in template.metadata.items():
        if key.lower() in ("language", "title", "handler_name"):
            stream.metadata[key] = value
    try:
        stream.disposition = template.disposition
    except (AttributeError, TypeError, ValueError):
        pass


class _Reencoder:
    """Decode a source stream and encode it again (audio: resampled; subtitles: converted text)."""

    def __init__(self, out, src_stream, plan: StreamPlan, shift: Fraction):
        import av

        self.src, self.plan, self.shift = src_stream, plan, shift
        ctx = src_stream.codec_context
        if plan.kind == "audio":
            rate = ctx.sample_rate or 48000
            if plan.target == "libopus":
                rate = 48000
            channels = ctx.channels or 2
            layout = ctx.layout.name
            if layout.endswith("channels"):  # an unnamed layout (e.g. PCM in Matroska): the usual one
                layout = DEFAULT_LAYOUTS.get(channels, "stereo")
            if plan.target == "libopus" and channels > 2:
                layout = "stereo"
            self.stream = out.add_stream(plan.target, rate=rate)
            self.stream.layout = layout
            fmt = self.stream.codec_context.codec.audio_formats[0].name
            self.resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
            self.samples = None
        else:
            ctx.open()  # the decoder's ASS header carries the styles the encoder needs
            self.stream = out.add_stream(plan.target)
            self.stream.codec_context.subtitle_header = ctx.subtitle_header
            self.stream.codec_context.time_base = src_stream.time_base
        _copy_metadata(self.stream, src_stream)

    def packets(self, packet) -> list:
        if self.plan.kind == "subtitle":
            if packet is None or packet.pts is None:
                return []
            subs = self.src.codec_context.decode2(packet)
            if not subs:
                return []
            encoded = self.stream.codec_context.encode_subtitle(subs)
            encoded.pts = encoded.dts = packet.pts - round(self.shift / self.src.time_base)
            encoded.duration, encoded.time_base = packet.duration, self.src.time_base
            encoded.stream = self.stream
            return [encoded]
        frames = self.src.codec_context.decode(packet) if packet is not None else self.src.codec_context.decode(None)
        out = []
        rate = self.stream.codec_context.sample_rate
        for frame in list(frames) + ([None] if packet is None else []):
            if frame is not None and self.samples is None:  # align the first sample with the source timing
                start = Fraction(frame.pts or 0) * (frame.time_base or self.src.time_base) - self.shift
                self.samples = max(0, round(start * rate))
            frame_out = [] if frame is None and self.samples is None else self.resampler.resample(frame)
            for chunk in frame_out:
                chunk.pts, chunk.time_base = self.samples, Fraction(1, rate)
                self.samples += chunk.samples
                out.extend(self.stream.encode(chunk))
        if packet is None:
            out.extend(self.stream.encode(None))
        return out


def _video_packets(segments: Sequence[PathLike], stream, fps: Fraction) -> Iterator[Tuple[float, object]]:
    """The segments' packets, re-stamped as one constant-rate timeline (frame index / fps)."""
    import av

    start, step = 0, 1 / fps
    for path in segments:
        with av.open(str(path)) as seg:
            src = seg.streams.video[0]
            count = 0
            for packet in seg.demux(src):
                if packet.size == 0 or packet.pts is None:
                    continue
                pts = round(packet.pts * src.time_base * fps)
                dts = round((packet.dts if packet.dts is not None else packet.pts) * src.time_base * fps)
                packet.pts, packet.dts, packet.time_base = start + pts, start + dts, step
                packet.duration = 1
                packet.stream = stream
                count += 1
                yield float((start + dts) * step), packet
            start += count


def _source_packets(src, plans, shift: Fraction) -> Iterator[Tuple[float, int, object]]:
    wanted = {p.index for p in plans if p.action != "drop"}
    if not wanted:
        return
    streams = [s for s in src.streams if s.index in wanted]
    for packet in src.demux(streams):
        if packet.size == 0 or packet.pts is None:
            continue
        when = packet.dts if packet.dts is not None else packet.pts
        yield float(when * packet.time_base - shift), packet.stream.index, packet


def assemble(out_path: PathLike, segments: Sequence[PathLike], fps: Fraction, source: PathLike,
             plans: List[StreamPlan], settings: EncoderSettings, start_seconds: Fraction = Fraction(0)) -> None:
    """Concatenate the video segments (remux) and the source's kept streams into `out_path`."""
    import av

    options = {"movflags": "+faststart"} if settings.container in ("mp4", "mov") else {}
    with av.open(str(segments[0])) as first, av.open(str(source)) as src, \
            av.open(str(out_path), "w", format=settings.container, options=options) as out:
        video = _copy_stream(out, first.streams.video[0], settings.encoder.codec)
        video.time_base = 1 / fps
        if settings.encoder.tag and settings.container in ("mp4", "mov"):
            video.codec_tag = settings.encoder.tag
        shift = Fraction(start_seconds)
        copies, encoders = {}, {}
        for plan in plans:
            if plan.action == "copy":
                copies[plan.index] = _copy_stream(out, src.streams[plan.index], plan.codec)
                _copy_metadata(copies[plan.index], src.streams[plan.index])
            elif plan.action == "encode":
                encoders[plan.index] = _Reencoder(out, src.streams[plan.index], plan, shift)
        merged = heapq.merge(((t, 0, p) for t, p in _video_packets(segments, video, fps)),
                             ((t, 1, (i, p)) for t, i, p in _source_packets(src, plans, shift)),
                             key=lambda item: (item[0], item[1]))
        for _, kind, item in merged:
            if kind == 0:
                out.mux(item)
                continue
            index, packet = item
            if index in copies:
                offset = round(shift / packet.time_base)
                packet.pts -= offset
                if packet.dts is not None:
                    packet.dts -= offset
                packet.stream = copies[index]
                out.mux(packet)
            else:
                out.mux(encoders[index].packets(packet))
        for reencoder in encoders.values():
            out.mux(reencoder.packets(None))


def stream_report(path: PathLike) -> List[dict]:
    """Each stream of a file as {type, codec, language}: what tests and the result info check."""
    import av

    with av.open(str(path)) as c:
        return [{"type": s.type, "codec": _codec_name(s), "language": s.metadata.get("language")}
                for s in c.streams]
