"""Video SR benchmark: `python -m evaluate --task vsr --sets Vimeo7,CDFI`.

Sets: 'Vimeo7' = the 16 Vimeo-90K septuplets in vsr/vimeo_septuplet (7 frames of 448x256 each), 'CDFI' =
the 52-frame 854x480 sequence in vfi/sequences/cdfi_854x480 (one clip). HR mod-cropped to the scale, LR
by PIL bicubic per frame (the image protocol). Rows: `bicubic`, per-frame `flashsr_xS` and the video
models of that scale (default: all trained ones; `--scale 2`: flashsr_x2 and vsr_x2), and
`flashsr_xS+fusion`: per-frame SR fused over 7 frames along DIS flow (serve/vsr_fusion.py; any SR
model name + '+fusion' works). `--degradation real-light|real-medium|real-heavy` makes every LR frame with
common.degradations' preset (blur, noise, JPEG; each frame its own seed), sets labelled SET:PRESET;
denoise-strength models (flashsr_real_*) run at `--strength`. Y-PSNR / SSIM
(BT.601, `scale` px border crop) on the centre frame (Vimeo7: im4; CDFI: frame 26) and averaged over all
frames.

Temporal consistency `tc`: the mean absolute Y difference between consecutive output frames after
warping frame t+1 back onto frame t along flow computed on the ground truth (OpenCV Farneback), divided
by the same figure for the ground truth itself: 1.0 is as stable as the truth, above it flickers more.
`terr` (TE): the mean absolute difference between the output's and the truth's frame-to-frame change
(the same warped differences, Y in 0-255): 0 is changing exactly as the truth does; flicker raises it,
and so does an output smoother over time than the truth, which `tc` would score below 1.
`cpu_ms_frame`: the fastest of 10 timed runs (ms) of one 448x256 output frame (the Vimeo size: 112x64 in
at x4, 224x128 at x2), ONNX Runtime CPU, 1 thread (the video model: one step graph; '+fusion': the
per-frame model plus the fusion of one frame, DIS flows included, OpenCV on 1 thread); the minimum, not
the median, because the CPU may be shared (other load only ever adds time); compare rows of one run only.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import cv2
import numpy as np
import torch

from common.images import ImageLoadError, list_images, read_image, to_uint8
from common.metrics import psnr_y, quantize, rgb_to_y, ssim_y
from common.paths import data_root
from common.resize import bicubic_upscale, mod_crop
from models import REGISTRY, get_spec, load_model
from models.checkpoint import CheckpointError
from models.registry import positional_module
from serve import vsr_fusion
from serve.bench import time_runs

from .common import by_model_and_set, markdown_table, mean, model_runner
from .sr import make_sr_pair, set_label

BASELINE = "bicubic"
BASELINES = (BASELINE, "flashsr_x2", "flashsr_x4")  # rows whose sidecars --update-sidecar leaves alone
DEFAULT_SETS = "Vimeo7,CDFI"
METRICS = ("psnr_y_centre", "ssim_y_centre", "psnr_y", "ssim_y", "tc", "terr")
CLIP_SETS = {"Vimeo7": "vsr/vimeo_septuplet", "CDFI": "vfi/sequences/cdfi_854x480"}
SPEED_HR_HW, SPEED_RUNS = (256, 448), 10  # the Vimeo frame: the LR input is this / scale


def load_clips(name: str, limit: int = 0) -> List[List[np.ndarray]]:
    """[[HR frame, ...], ...]: Vimeo7's septuplets (SEQ/CLIP/im1..7.png) or the CDFI sequence as one clip."""
    if name not in CLIP_SETS:
        raise SystemExit(f"error: unknown video set '{name}'; use {', '.join(CLIP_SETS)}")
    root = data_root() / CLIP_SETS[name]
    if not root.is_dir():
        raise SystemExit(f"error: video set '{name}' not found at {root} (set STSR_DATA)")
    folders = sorted(c for s in root.iterdir() if s.is_dir() for c in s.iterdir() if c.is_dir()) \
        if name == "Vimeo7" else [root]
    clips = []
    for folder in folders[: limit or None]:
        try:
            clips.append([read_image(p).rgb for p in list_images(folder)])
        except ImageLoadError as exc:
            print(f"warning: skipping {folder.name}: {exc}", file=sys.stderr)
    if not clips:
        raise SystemExit(f"error: no readable clips under {root}")
    return clips


load_one_set = load_clips


def plan(args) -> List[str]:
    """bicubic, per-frame flashsr_xS and the video models (--model: a comma list of any of them, or all)."""
    if args.model in (None, "", "all"):
        vsr = [s.name for s in REGISTRY.values() if s.task == "vsr" and s.has_weights()]
        if not vsr:
            print("warning: no video SR model has weights yet", file=sys.stderr)
        scale = args.scale or 4
        per_frame = f"flashsr_x{scale}"
        return [BASELINE, per_frame, per_frame + vsr_fusion.SUFFIX] + [n for n in vsr if get_spec(n).scale == scale]
    names = [n.strip() for n in args.model.split(",") if n.strip()]
    for name in names:
        base = vsr_fusion.split_name(name)
        if base is not None and (base not in REGISTRY or REGISTRY[base].task != "sr"):
            raise SystemExit(f"error: '{name}': '{base}' is not a registered SR model")
        if name != BASELINE and base is None and (name not in REGISTRY or REGISTRY[name].task not in ("sr", "vsr")):
            raise SystemExit(f"error: '{name}' is not a registered SR or video SR model")
    return names


def frame_upscaler(name: str, device: str, strength: float = 0.5):
    """f(LR frame) -> SR frame of a per-frame model; denoise-strength models run at `strength`."""
    runner = model_runner(name, None, device)
    return (lambda f: runner(f, strength=strength)) if get_spec(name).strength_input else runner


def clip_upscaler(name: str, scale: int, weights: Optional[Path], device: str, strength: float = 0.5):
    """f([LR frame, ...]) -> [SR frame, ...] (HxWx3 float in [0, 1])."""
    if name == BASELINE:
        return lambda frames: [bicubic_upscale(f, scale) for f in frames]
    base = vsr_fusion.split_name(name)
    if base is not None:  # per-frame SR as served (uint8), fused over neighbouring frames
        runner = frame_upscaler(base, device, strength)
        return lambda frames: [f.astype(np.float32) / 255.0 for f in vsr_fusion.fuse_clip(
            frames, lambda f: to_uint8(np.clip(runner(f), 0.0, 1.0)), scale,
            back_project=vsr_fusion.back_projects(base))]
    if not get_spec(name).recurrent_hidden:
        runner = frame_upscaler(name, device, strength)
        return lambda frames: [runner(f) for f in frames]
    try:
        model = load_model(name, weights).to(device)
    except CheckpointError as exc:
        raise SystemExit(f"error: {exc}") from None

    @torch.inference_mode()
    def run(frames):
        out, prev, hidden = [], None, None
        for f in frames:
            x = torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1)))[None].to(device)
            if prev is None:
                prev, hidden = x, model.start_hidden(x)
            sr, hidden = model.step(x, prev, hidden)
            prev = x
            out.append(sr[0].clamp(0, 1).cpu().numpy().transpose(1, 2, 0))
        return out

    return run


def _changes(frames: List[np.ndarray], flows: List[np.ndarray], crop: int) -> List[tuple]:
    """[(Y_t - warp(Y_t+1), inside mask)] over consecutive pairs, warped along the given (ground-truth) flows."""
    out = []
    for a, b, flow in zip(frames, frames[1:], flows):
        ya, yb = rgb_to_y(quantize(a)).astype(np.float32), rgb_to_y(quantize(b)).astype(np.float32)
        h, w = ya.shape
        grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).astype(np.float32) + flow
        warped = cv2.remap(yb, grid[..., 0], grid[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        inside = (grid[..., 0] >= 0) & (grid[..., 0] <= w - 1) & (grid[..., 1] >= 0) & (grid[..., 1] <= h - 1)
        inside[:crop], inside[-crop:], inside[:, :crop], inside[:, -crop:] = False, False, False, False
        out.append((ya - warped, inside))
    return out


def flicker(frames: List[np.ndarray], flows: List[np.ndarray], crop: int) -> float:
    """Mean |Y_t - warp(Y_t+1)| over consecutive pairs, warped along the given (ground-truth) flows."""
    return float(np.mean([float(np.abs(d)[inside].mean()) for d, inside in _changes(frames, flows, crop)]))


def temporal_error(frames: List[np.ndarray], truth: List[np.ndarray], flows: List[np.ndarray], crop: int) -> float:
    """Mean |(Y_t - warp(Y_t+1)) - (G_t - warp(G_t+1))| (Y in 0-255): how far the output's frame-to-frame
    change is from the truth's, 0 = the same. Unlike `tc`, a frame-to-frame *smoother* output than the
    truth (blurrier, or temporally averaged) does not look better here: it is off by what it lost."""
    pairs = zip(_changes(frames, flows, crop), _changes(truth, flows, crop))
    return float(np.mean([float(np.abs(d - g)[inside].mean()) for (d, inside), (g, _) in pairs]))


def truth_flows(hr: List[np.ndarray]) -> List[np.ndarray]:
    """Farneback flow t -> t+1 on the ground truth's grey frames (sampling frame t+1 at x + flow gives t)."""
    grey = [cv2.cvtColor(np.clip(np.rint(f * 255), 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY) for f in hr]
    return [cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.2, 0) for a, b in zip(grey, grey[1:])]


def evaluate_video(name: str, scale: int, sets: Dict[str, list], weights=None, device="cpu",
                   degradation: str = "clean", strength: float = 0.5) -> List[dict]:
    """Rows of one model; `degradation` real-*: every LR frame through common.degradations' preset with its
    own seed (clip k, frame i: 1000 k + i), so noise and JPEG differ from frame to frame as in a real video."""
    upscale = clip_upscaler(name, scale, weights if get_spec_or_none(name, "vsr") else None, device, strength)
    extra = {} if degradation == "clean" else {"degradation": degradation}
    if name != BASELINE and get_spec(vsr_fusion.split_name(name) or name).strength_input:
        extra["strength"] = strength
    rows = []
    for set_name, clips in sets.items():
        scores: Dict[str, list] = {k: [] for k in METRICS}
        seconds, frames = 0.0, 0
        for k, clip in enumerate(clips):
            hr = [mod_crop(f, scale) for f in clip]
            start = time.perf_counter()
            sr = upscale([make_sr_pair(f, scale, degradation, seed=1000 * k + i)[1] for i, f in enumerate(hr)])
            seconds += time.perf_counter() - start
            frames += len(hr)
            centre = len(hr) // 2
            scores["psnr_y_centre"].append(psnr_y(sr[centre], hr[centre], crop=scale))
            scores["ssim_y_centre"].append(ssim_y(sr[centre], hr[centre], crop=scale))
            scores["psnr_y"] += [psnr_y(s, h, crop=scale) for s, h in zip(sr, hr)]
            scores["ssim_y"] += [ssim_y(s, h, crop=scale) for s, h in zip(sr, hr)]
            flows = truth_flows(hr)
            scores["tc"].append(flicker(sr, flows, scale) / max(flicker(hr, flows, scale), 1e-6))
            scores["terr"].append(temporal_error(sr, hr, flows, scale))
        rows.append({"model": name, "set": set_label(set_name, degradation), "scale": scale, **extra,
                     "psnr_y_centre": mean(scores["psnr_y_centre"], 4),
                     "ssim_y_centre": mean(scores["ssim_y_centre"], 5), "psnr_y": mean(scores["psnr_y"], 4),
                     "ssim_y": mean(scores["ssim_y"], 5), "tc": mean(scores["tc"], 4),
                     "terr": mean(scores["terr"], 4), "clips": len(clips),
                     "frames": frames, "seconds": round(seconds, 2)})
    if name != BASELINE and rows and vsr_fusion.split_name(name):
        ms, runtime = cpu_ms_per_frame(vsr_fusion.split_name(name))
        for r in rows:
            r.update(cpu_ms_frame=round(ms + fusion_ms_per_frame(scale), 1), runtime=runtime + " + OpenCV")
    elif name != BASELINE and rows:
        ms, runtime = cpu_ms_per_frame(name, weights if get_spec_or_none(name, "vsr") else None)
        for r in rows:
            r.update(cpu_ms_frame=ms, runtime=runtime)
    return rows


def scale_of(name: str) -> int:
    return get_spec(vsr_fusion.split_name(name) or name).scale


def fusion_ms_per_frame(scale: int, runs: int = SPEED_RUNS) -> float:
    """Fastest ms FusionUpscaler adds to one Vimeo-sized output frame in steady state (its guide, 2 DIS
    flows, the chained flows, the fusion with 6 neighbours and the back-projection), OpenCV on 1 thread;
    the per-frame SR is a precomputed frame, timed apart by cpu_ms_per_frame. The frames pan a smooth
    scene by a pixel each, so no scene cut cuts the neighbours off."""
    h, w = SPEED_HR_HW[0] // scale, SPEED_HR_HW[1] // scale
    count = 2 * vsr_fusion.RADIUS + runs + 1
    scene = cv2.resize((np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8), (w + count, h),
                       interpolation=cv2.INTER_CUBIC)
    frames = iter([np.ascontiguousarray(scene[:, i:i + w]) for i in range(count)])
    sr = cv2.resize(scene[:, :w], (SPEED_HR_HW[1], SPEED_HR_HW[0]), interpolation=cv2.INTER_CUBIC)
    fuser = vsr_fusion.FusionUpscaler(lambda frame: sr, scale)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for _ in range(2 * vsr_fusion.RADIUS):  # from here each push emits a frame with all 6 neighbours
            fuser.push(next(frames))
        return _min_ms(lambda: fuser.push(next(frames)), runs)
    finally:
        cv2.setNumThreads(threads)


def get_spec_or_none(name: str, task: str):
    spec = REGISTRY.get(name)
    return spec if spec is not None and spec.task == task else None


def cpu_ms_per_frame(name: str, weights=None, hw=None, runs: int = SPEED_RUNS) -> tuple:
    """(fastest ms of one frame at LR `hw` (default: a Vimeo frame / scale), runtime): ONNX Runtime CPU,
    1 thread, on a temporary export."""
    spec = get_spec(name)
    hw = hw or (SPEED_HR_HW[0] // spec.scale, SPEED_HR_HW[1] // spec.scale)
    module = positional_module(spec, load_model(name, weights)).eval()
    feeds = spec.io.random_inputs(1, *hw)
    try:
        import onnxruntime as ort
    except ImportError:
        args = [torch.from_numpy(feeds[n]) for n in spec.io.input_names]
        with torch.inference_mode():
            return _min_ms(lambda: module(*args), runs), "torch"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(module, tuple(torch.from_numpy(feeds[n]) for n in spec.io.input_names), str(path),
                          dynamo=False, input_names=list(spec.io.input_names),
                          output_names=list(spec.io.output_names), opset_version=17)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return _min_ms(lambda: session.run(None, feeds), runs), "onnxruntime"


def _min_ms(call, runs: int) -> float:
    """The min of `runs` timed calls in ms, after 1 untimed warm-up call (serve.bench.time_runs)."""
    return round(float(np.min(time_runs(call, runs, warmup=1, cuda=False))), 1)


def evaluate_job(name, sets, args) -> List[dict]:
    scale = scale_of(name) if name != BASELINE else (args.scale or 4)
    strength = getattr(args, "strength", 0.5)
    if not 0.0 <= strength <= 1.0:
        raise SystemExit(f"error: --strength must be in [0, 1], got {strength}")
    return evaluate_video(name, scale, sets, args.weights, args.device, getattr(args, "degradation", "clean"), strength)


def line(r: dict) -> str:
    speed = f", {r['cpu_ms_frame']:.1f} ms/frame ({r['runtime']})" if "cpu_ms_frame" in r else ""
    return (f"{r['model']:<12} {r['set']:<7} centre Y-PSNR {r['psnr_y_centre']:.3f} dB SSIM {r['ssim_y_centre']:.4f}"
            f" | all {r['psnr_y']:.3f} / {r['ssim_y']:.4f} | TC {r['tc']:.3f} TE {r['terr']:.3f}"
            f" ({r['frames']} frames, "
            f"{r['seconds']:.1f} s{speed})")


def table(rows: List[dict], sets: List[str], args=None) -> str:
    """Centre and all-frame Y-PSNR / SSIM, TC and TE per set, then ORT CPU ms per frame."""
    sets = [set_label(s, getattr(args, "degradation", "clean")) for s in sets]
    head = ["model"] + [f"{s} {what}" for s in sets for what in ("centre", "all frames", "TC", "TE")] + ["ms / frame"]
    body = []
    for (model,), per_set in by_model_and_set(rows).items():
        cells = []
        for s in sets:
            r = per_set.get(s)
            cells += [f"{r['psnr_y_centre']:.2f} / {r['ssim_y_centre']:.4f}", f"{r['psnr_y']:.2f} / {r['ssim_y']:.4f}",
                      f"{r['tc']:.3f}", f"{r['terr']:.3f}"] if r else ["-", "-", "-", "-"]
        first = next(iter(per_set.values()))
        body.append([model, *cells, f"{first['cpu_ms_frame']:.0f}" if "cpu_ms_frame" in first else "-"])
    return markdown_table(head, body)
