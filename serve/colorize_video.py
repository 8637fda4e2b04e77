"""Video colorization with stable colours: colour a keyframe, carry its chroma along the motion.

    from serve.colorize_video import colorize_frames
    frames, info = colorize_frames(grey_frames, hints=[(100, 50, "#3070d0")])  # frames: HxWx3 float

Per-frame colorization flickers: each frame's colours are chosen anew. Here the first frame (and
every frame after a scene cut, serve.interp_core.is_scene_cut) is colorized by the colorizer, with
the user's hints on the first frame. Every later frame takes the previous frame's a, b warped onto
it by the interpolation model's flow (FlowInterp.estimate_flow at t = 1: F_1->0 moves frame 0's
pixels onto frame 1) where the warp is trustworthy, i.e. where the warped lightness matches the frame's
own (weight exp(-|dL| / LIGHTNESS_TOLERANCE), times CARRY), and the colorizer's own prediction for
the rest (occlusions, new content), so colours follow motion without drifting for ever. The user's
hints travel with the content too (each moved by the flow at its position, dropped once it leaves
the frame or at a cut), so the colorizer's own prediction keeps honouring them.

Flicker (`flicker`) is the mean |delta ab| between consecutive frames after warping the earlier one
by the same flow, over pixels where that warp is trustworthy (lightness matches within
LIGHTNESS_TOLERANCE): chroma change that motion does not explain. Flow runs at FLOW_SIDE px.

CLI: python -m serve.colorize_video FRAMES_FOLDER|VIDEO --out OUT.mp4 [--model M] [--hint X,Y,#rrggbb]
     [--per-frame] [--fps 25] [--vividness V]
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from common.images import to_uint8
from models import get_spec, load_model
from models.flowinterp import backward_warp
from models.io import MAX_VIVIDNESS

from .colorize import DEFAULT_MODEL, _lab_to_rgb, check_vividness, chroma, lightness
from .colorize_hints import check_hints
from .contract import InputError, cli_main
from .interp_core import is_scene_cut, thumbnail
from .runtime import get_backend

FLOW_MODEL = "flowinterp"
FLOW_SIDE = 512
CARRY = 0.95  # largest share of the warped previous chroma in a frame (the rest: the colorizer's own)
LIGHTNESS_TOLERANCE = 0.04  # |L/100 difference| at which a warp counts as 1/e trustworthy
MAX_FRAMES = 3000


class FlowField:
    """F_{t}->{t-1} between consecutive grey frames, from the interpolation model, at FLOW_SIDE px."""

    def __init__(self, model_name: str = FLOW_MODEL, side: int = FLOW_SIDE):
        self.model, self.side = load_model(model_name), side

    @torch.inference_mode()
    def __call__(self, grey_prev: np.ndarray, grey_cur: np.ndarray) -> torch.Tensor:
        """(1,2,H,W) flow in full-resolution pixels: sample the previous frame at (x, y) + flow."""
        h, w = grey_cur.shape
        factor = min(1.0, self.side / max(h, w))
        sh, sw = (max(16, round(h * factor / 16) * 16), max(16, round(w * factor / 16) * 16))
        frames = [torch.from_numpy(cv2.resize(g, (sw, sh), interpolation=cv2.INTER_AREA))[None, None].expand(
            1, 3, sh, sw) for g in (grey_prev, grey_cur)]
        flow, _ = self.model.estimate_flow(frames[0], frames[1], torch.ones(1, 1, 1, 1))
        flow = flow[:, :2] * torch.tensor([w / sw, h / sh]).view(1, 2, 1, 1)
        return torch.nn.functional.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)


def _warp(arr: np.ndarray, flow: torch.Tensor) -> np.ndarray:
    """HxWxC (or HxW) array sampled at (x, y) + flow."""
    t = torch.from_numpy(np.ascontiguousarray(arr if arr.ndim == 3 else arr[..., None])).permute(2, 0, 1)[None]
    out = backward_warp(t.float(), flow)[0].permute(1, 2, 0).numpy()
    return out if arr.ndim == 3 else out[..., 0]


def trust(grey: np.ndarray, warped_grey: np.ndarray) -> np.ndarray:
    """HxW in (0, 1]: how far a warped pixel can be believed, from its lightness mismatch."""
    return np.exp(-np.abs(grey - warped_grey) / LIGHTNESS_TOLERANCE).astype(np.float32)


def move_hints(hints: Sequence, flow: torch.Tensor) -> list:
    """Hints of the previous frame moved onto the next: a point at p goes to p - flow(p) (flow is
    F_t->t-1, so for small motion its value near p is minus the point's displacement); points that
    leave the frame are dropped."""
    h, w = flow.shape[-2:]
    moved = []
    for x, y, colour in hints:
        fx, fy = (float(v) for v in flow[0, :, min(h - 1, int(y)), min(w - 1, int(x))])
        nx, ny = x - fx, y - fy
        if 0 <= nx < w and 0 <= ny < h:
            moved.append((nx, ny, colour))
    return moved


def colorize_stream(frames: Iterable[np.ndarray], hints: Optional[Sequence] = None, model_name: str = DEFAULT_MODEL,
                    backend: str = "auto", per_frame: bool = False, flow: Optional[FlowField] = None,
                    info: Optional[dict] = None, progress: Optional[Callable[[int, int], None]] = None,
                    total: int = 0, vividness: Optional[float] = None, **backend_options) -> Iterator[np.ndarray]:
    """Colour frames one at a time (RGB or grey HxWx3 / HxW float in [0,1]; colour is turned grey
    first), holding only the previous frame: a clip of any length streams through. `info` (a dict)
    receives keyframes (first frame and scene cuts), hints, mode and the flicker measure as it goes;
    `progress(done, total)` is called after each frame (it may raise to stop). `vividness`: as
    serve.colorize.colorize's, for every frame."""
    info = {} if info is None else info
    vividness = check_vividness(vividness)
    spec = get_spec(model_name)
    if spec.task != "colorize":
        raise InputError(f"'{model_name}' is a {spec.task} model, not colorization")
    if hints and not spec.hint_inputs:
        raise InputError(f"'{model_name}' takes no colour hints; use a hint model such as colorize_hint_cls")
    runner, prev_grey, prev_ab, size = None, None, None, None
    total_diff, total_count = 0.0, 0
    info.update({"frames": 0, "keyframes": [], "mode": "per-frame" if per_frame else "propagated", "flicker": 0.0,
                 "hints": 0, "model": model_name,
                 "vividness": vividness if spec.vividness_input else None})
    for t, frame in enumerate(frames):
        if t >= MAX_FRAMES:
            raise InputError(f"more than {MAX_FRAMES} frames is over the limit; split the clip")
        grey = lightness(frame) if frame.ndim == 3 else np.asarray(frame, np.float32)
        if t == 0:
            size = grey.shape
            hints = check_hints(hints, size[1], size[0])
            info["hints"] = len(hints)
            runner = get_backend(model_name, backend, **backend_options)
            flow = flow or FlowField()
        elif grey.shape != size:
            raise InputError("every frame must have the same size")
        field = None
        if t > 0 and is_scene_cut(thumbnail(prev_grey[..., None]), thumbnail(grey[..., None])):
            hints = []
        elif t > 0:
            field = flow(prev_grey, grey)
            hints = [] if per_frame else move_hints(hints, field)
        if t == 0 or field is None:
            info["keyframes"].append(t)
        own, _ = chroma(runner, grey, hints if (t == 0 or not per_frame) else (), vividness=vividness)
        if field is None:
            ab = own
        else:  # the warp of the previous frame feeds both the carried colour and the flicker measure
            trusted, carried = trust(grey, _warp(prev_grey, field)), _warp(prev_ab, field)
            weight = CARRY * trusted[..., None]
            ab = own if per_frame else weight * carried + (1 - weight) * own
            # flicker: mean |ab_t - warp(ab_t-1)| (Lab units) over trustworthy pixels, skipping scene cuts
            ok = trusted > 0.5
            total_diff += float(np.abs(ab - carried).sum(axis=2)[ok].sum())
            total_count += int(ok.sum())
        prev_grey, prev_ab = grey, ab
        info["frames"] = t + 1
        info["flicker"] = round(total_diff / max(1, total_count), 4)
        yield _lab_to_rgb(grey, ab)
        if progress is not None:
            progress(t + 1, total)
    if not info["frames"]:
        raise InputError("no frames to colorize")


def colorize_frames(frames: Sequence[np.ndarray], hints: Optional[Sequence] = None, model_name: str = DEFAULT_MODEL,
                    backend: str = "auto", per_frame: bool = False, flow: Optional[FlowField] = None,
                    vividness: Optional[float] = None, **backend_options) -> Tuple[List[np.ndarray], dict]:
    """colorize_stream for a list: (the colour frames, info)."""
    if len(frames) > MAX_FRAMES:
        raise InputError(f"{len(frames)} frames is over the limit of {MAX_FRAMES}; split the clip")
    info: dict = {}
    colour = list(colorize_stream(frames, hints, model_name, backend, per_frame, flow, info=info, vividness=vividness,
                                  **backend_options))
    return colour, info


def read_clip(source: Path, limit: int = MAX_FRAMES) -> Tuple[List[np.ndarray], float]:
    """Frames (float RGB) of a folder of images (sorted by name) or a video file, and its frame rate."""
    from common.images import read_image

    if source.is_dir():
        paths = sorted(p for p in source.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
        return [read_image(p).rgb for p in paths[:limit]], 25.0
    from .video_io import probe

    return list(itertools.islice(iter_frames(source), limit)), float(probe(source).fps)


def iter_frames(source: Path) -> Iterator[np.ndarray]:
    """A video file's frames as float RGB in [0,1], decoded one at a time."""
    from .video_io import read_frames

    for rgb in read_frames(source):
        yield rgb.astype(np.float32) / 255.0


@cli_main
def main(argv=None) -> int:
    from fractions import Fraction

    from .colorize import parse_cli_hint
    from .video_io import Mp4Writer

    p = argparse.ArgumentParser(prog="python -m serve.colorize_video", description=__doc__.split("\n\n")[0])
    p.add_argument("input", type=Path, help="folder of frames or a video file (colour is turned grey first)")
    p.add_argument("--out", type=Path, required=True, help="output .mp4")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--hint", action="append", default=[], metavar="X,Y,COLOUR", help="hint on the first frame")
    p.add_argument("--per-frame", action="store_true", help="colour every frame on its own (flickers; for comparison)")
    p.add_argument("--fps", type=float, default=None, help="output rate (default: the input's, 25 for folders)")
    p.add_argument("--vividness", type=float, default=None,
                   help=f"colour strength, 0 to {MAX_VIVIDNESS:g}; 1 (default) = the calibrated colour")
    args = p.parse_args(argv)
    if args.out.suffix.lower() != ".mp4":
        p.error(f"--out must be an .mp4 file (H.264), not {args.out.name!r}")
    if args.fps is not None and not 0 < args.fps <= 240:  # NaN fails this too
        p.error(f"--fps must be a frame rate above 0 and at most 240, not {args.fps}")
    frames, fps = read_clip(args.input)
    colour, info = colorize_frames(frames, [parse_cli_hint(h) for h in args.hint], args.model,
                                   per_frame=args.per_frame, vividness=args.vividness)
    h, w = colour[0].shape[:2]
    writer = Mp4Writer(args.out, Fraction(args.fps or fps).limit_denominator(1001), w, h)
    for frame in colour:
        writer.write(to_uint8(frame))
    writer.finish_video()  # the frames the encoder still holds; without it the file lost its last frames
    writer.close()
    print(f"{args.out}: {info['frames']} frames, keyframes {info['keyframes']}, flicker {info['flicker']:.3f} "
          f"(mean |delta ab| after flow warping, {info['mode']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
