"""The video CLI (every video path: SR at the original rate, x N or a target frame rate, both; resumable),
and the video I/O names (serve.video_io) under their old module name.

    python -m serve.video IN.mp4 --sr flashsr_x2 --target-fps 60 --encoder h265 --crf 20 --out OUT.mp4
    python -m serve.video IN.mp4 --sr flashsr_x4+fusion --out OUT.mp4  # multi-frame: fused over 7 frames
    python -m serve.video IN.mp4 --sr vsr_x4 --out OUT.mp4        # multi-frame, recurrent (or vsr_x2)
    python -m serve.video --list-encoders
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .contract import cli_main
from .interp_core import VIDEO_INTERPOLATOR
from .video_encode import DEFAULT_ENCODER, DEFAULT_PIX_FMT, ENCODERS, PIX_FMTS, available_encoders
from .video_io import (  # noqa: F401
    Mp4Writer,
    VideoInfo,
    audio_format,
    make_test_clip,
    probe,
    rate_variation,
    read_frames,
    snap_rate,
    stream_summary,
)
from .video_job import DEDUP_MODES, DEFAULT_SEGMENT_FRAMES, process_video


@cli_main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m serve.video", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", help="the video (any container/codec FFmpeg reads)")
    p.add_argument("--out", help="output .mp4 (default), .mkv, .webm or .mov; default: IN_out.mp4 beside the input")
    p.add_argument("--sr", default=None, metavar="MODEL",
                   help="upscale every frame with this SR model (flashsr_x2); MODEL+fusion (flashsr_x4+fusion: each "
                        "frame fused with its 6 neighbours along the motion, the best multi-frame result) or a "
                        "recurrent video SR model (vsr_x4, vsr_x2); multi-frame modes restart at scene cuts")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--fps-factor", type=int, default=1, help="multiply the frame rate (interpolation)")
    rate.add_argument("--target-fps", type=float, default=None, help="any output rate, e.g. 60 or 59.94")
    p.add_argument("--interp-model", default=VIDEO_INTERPOLATOR)
    p.add_argument("--dedup", choices=DEDUP_MODES, default="skip",
                   help="repeated frames: skip (copy, no interpolation across), replace (fill with "
                        "interpolated frames) or off")
    p.add_argument("--encoder", default=DEFAULT_ENCODER, help=f"one of {', '.join(ENCODERS)}")
    p.add_argument("--crf", type=int, default=None, help="quality (lower = better); default per encoder: "
                   + ", ".join(f"{k} {e.default_crf}" for k, e in ENCODERS.items()))
    p.add_argument("--pix-fmt", default=DEFAULT_PIX_FMT, choices=PIX_FMTS)
    p.add_argument("--backend", default="auto", help="auto, torch, onnx, trt or a kind from serve.runtime.KINDS")
    p.add_argument("--precision", default="fp32", help="fp32 (exact), bf16, int8 or auto (serve.precision): "
                   "the SR and interpolation models' precision")
    p.add_argument("--segment-frames", type=int, default=DEFAULT_SEGMENT_FRAMES,
                   help="output frames per segment (the unit of resume)")
    p.add_argument("--no-resume", action="store_true", help="start over even if a work folder of this job exists")
    p.add_argument("--no-audio", action="store_true")
    p.add_argument("--no-subtitles", action="store_true")
    p.add_argument("--list-encoders", action="store_true", help="print the encoders this PyAV build has")
    args = p.parse_args(argv)
    if args.list_encoders:
        for name in available_encoders():
            enc = ENCODERS[name]
            print(f"{name}: {enc.library}, CRF 0-{enc.max_crf} (default {enc.default_crf})")
        return 0
    if not args.input:
        p.error("give a video (or --list-encoders)")
    source = Path(args.input)
    out = Path(args.out) if args.out else source.with_name(f"{source.stem}_out.mp4")
    from tqdm import tqdm

    with tqdm(desc=out.name, unit="frame", disable=None, dynamic_ncols=True) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            info = process_video(source, out, fps_factor=args.fps_factor, target_fps=args.target_fps,
                                 interp_model=args.interp_model, sr_model=args.sr, backend=args.backend,
                                 encoder=args.encoder, crf=args.crf, pix_fmt=args.pix_fmt, dedup=args.dedup,
                                 keep_audio=not args.no_audio, keep_subtitles=not args.no_subtitles,
                                 segment_frames=args.segment_frames, resume=not args.no_resume, progress=progress,
                                 precision=args.precision)
        except KeyboardInterrupt:
            bar.close()
            print(f"stopped; the finished segments are kept in {out.parent / ('.' + out.name + '.work')}: "
                  "run the same command again to resume", file=sys.stderr)
            return 130
    print(f"{info['output']}: {info['frames_out']} frames at {info['fps_out']:.4g} fps, {info['codec']} "
          f"(from {info['input']}) in {info['seconds']:.1f} s")
    for line in info["notes"] + info["streams"]:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
