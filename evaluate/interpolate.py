"""Frame interpolation benchmark: RGB PSNR and SSIM (8-bit-quantised frames) of the frame at t = 0.5.

Sets: 'UCF101' is the real DVF triplet set under $STSR_DATA/vfi/UCF101 (N/frame_00.png,
frame_01_gt.png, frame_02.png; evaluation only); 'Vimeo7' takes frames 3 and 5 -> 4 of the 16
Vimeo-90K septuplets in vsr/vimeo_septuplet, 'Vimeo7wide' frames 1 and 7 -> 4 (large motion);
'CDFI' makes real triplets (i, i+1, i+2) from the 854x480 frame sequence in
vfi/sequences/cdfi_854x480 (gap 2), 'CDFI4' (i, i+2, i+4) (gap 4, large motion); any other name is
a benchmark image folder (e.g. BSD68) turned into held-out synthetic triplets (common/motion.py,
256 px, t=0.5, fixed seed). `blend` is the linear cross-fade baseline, `dis` OpenCV's DIS flow alone (both
frames warped to t and cross-faded, no model); `MODEL+dis` is the model fused with DIS
(serve/interp_fusion.py; its time includes the fusion, OpenCV on the same 2 threads). Output: one object
per (model, set) with keys model, set, psnr, ssim (+ images, seconds), and for models `cpu_ms_256`: the
median CPU time of one 256x256 pair (ONNX Runtime, 2 threads; torch when onnxruntime is missing).
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from common.images import ImageLoadError, list_images, read_image
from common.metrics import psnr_rgb, quantize, ssim
from common.motion import heldout_triplets
from common.paths import data_root
from models import get_spec, load_model
from models.io import TIMESTEP
from serve import interp_fusion
from serve.bench import time_runs

from .common import by_model_and_set, load_set, markdown_table, mean, model_runner, select_models

BASELINE = "blend"
DIS_ONLY = "dis"  # a second baseline: the classical flow alone
SEQUENCES = {"CDFI": ("vfi/sequences/cdfi_854x480", 2), "CDFI4": ("vfi/sequences/cdfi_854x480", 4)}  # (folder, gap)
REAL_SETS = {"UCF101": ("vfi/UCF101", ("frame_00.png", "frame_01_gt.png", "frame_02.png"))}
SEPTUPLETS = {"Vimeo7": ("vsr/vimeo_septuplet", ("im3.png", "im4.png", "im5.png")),  # SEQ/CLIP/im1..im7
              "Vimeo7wide": ("vsr/vimeo_septuplet", ("im1.png", "im4.png", "im7.png"))}
SPEED_SIZE, SPEED_THREADS, SPEED_RUNS = 256, 2, 15
HELDOUT_SEED = 2024
HELDOUT_SIZE = 256
DEFAULT_SETS = "BSD68,UCF101"
METRICS = ("psnr", "ssim")


def _triplet_folders(name: str, root: Path) -> List[Path]:
    if name in SEPTUPLETS:  # two levels: SEQ/CLIP
        return sorted(clip for seq in root.iterdir() if seq.is_dir() for clip in seq.iterdir() if clip.is_dir())
    return sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name))


def _real_triplets(name: str, limit: int) -> List[tuple]:
    folder, files = {**REAL_SETS, **SEPTUPLETS}[name]
    root = data_root() / folder
    if not root.is_dir():
        raise SystemExit(f"error: triplet set '{name}' not found at {root} (set STSR_DATA)")
    out = []
    for sub in _triplet_folders(name, root):
        if limit and len(out) >= limit:
            break
        try:
            f0, ft, f1 = (read_image(sub / f).rgb for f in files)
        except ImageLoadError as exc:
            print(f"warning: skipping {sub.name}: {exc}", file=sys.stderr)
            continue
        out.append((f0, ft, f1, 0.5))
    if not out:
        raise SystemExit(f"error: no readable triplets under {root}")
    return out


def load_triplets(name: str, limit: int = 0) -> List[tuple]:
    """[(frame0, frame_t, frame1, t)] for a real set or a synthetic one made from a benchmark folder."""
    if name in REAL_SETS or name in SEPTUPLETS:
        return _real_triplets(name, limit)
    if name in SEQUENCES:  # real frames (i, i+gap/2, i+gap), the middle one the truth; starts 2 apart
        rel, gap = SEQUENCES[name]
        folder = data_root() / rel
        frames = list_images(folder) if folder.is_dir() else []
        if len(frames) < gap + 1:
            raise SystemExit(f"error: frame sequence '{name}' not found (or under {gap + 1} frames) at {folder}")
        starts = range(0, len(frames) - gap, 2)[: limit or None]
        return [tuple(read_image(frames[i + k]).rgb for k in (0, gap // 2, gap)) + (0.5,) for i in starts]
    images = [img for _, img in load_set(name, limit)]
    return heldout_triplets(images, size=HELDOUT_SIZE, seed=HELDOUT_SEED)


def evaluate_interpolation(model_name: str, sets: Dict[str, list], weights: Optional[Path] = None,
                           device: str = "cpu") -> List[dict]:
    if model_name == BASELINE:
        def interpolate(f0, f1, **scalars):
            t = scalars[TIMESTEP]
            return (1 - t) * f0 + t * f1
    elif model_name == DIS_ONLY:
        def interpolate(f0, f1, **scalars):
            t = scalars[TIMESTEP]
            return interp_fusion.dis_only(f0, f1, t, interp_fusion.pair_flows(f0, f1))
    elif interp_fusion.split_name(model_name):
        runner = model_runner(interp_fusion.split_name(model_name), weights, device)

        def interpolate(f0, f1, **scalars):
            t = scalars[TIMESTEP]
            own = np.clip(runner(f0, f1, **scalars), 0.0, 1.0)
            return interp_fusion.fuse_frame(own, f0, f1, t, interp_fusion.pair_flows(f0, f1))
    else:
        interpolate = model_runner(model_name, weights, device)
    rows = []
    for set_name, triplets in sets.items():
        psnrs, ssims, seconds = [], [], 0.0
        for f0, ft, f1, t in triplets:
            start = time.perf_counter()
            pred = interpolate(f0, f1, **{TIMESTEP: t})
            seconds += time.perf_counter() - start
            psnrs.append(psnr_rgb(pred, ft))
            ssims.append(ssim(quantize(pred), quantize(ft)))
        rows.append({"model": model_name, "set": set_name, "psnr": mean(psnrs, 4), "ssim": mean(ssims, 5),
                     "images": len(triplets), "seconds": round(seconds, 3)})
    if model_name == DIS_ONLY and rows:
        for r in rows:
            r.update(cpu_ms_256=fusion_ms_per_pair(), runtime="OpenCV")
    elif model_name != BASELINE and rows:
        base = interp_fusion.split_name(model_name)
        ms, runtime = cpu_ms_per_pair(base or model_name, weights)
        if base:
            ms, runtime = round(ms + fusion_ms_per_pair(), 1), runtime + " + OpenCV"
        for r in rows:
            r.update(cpu_ms_256=ms, runtime=runtime)
    return rows


def fusion_ms_per_pair(size: int = SPEED_SIZE, threads: int = SPEED_THREADS, runs: int = SPEED_RUNS) -> float:
    """Median ms of the DIS fusion of one size x size pair at t = 0.5 (both flows included), OpenCV on
    `threads` threads: what MODEL+dis adds to the model's time."""
    import cv2

    rng = np.random.default_rng(0)
    base = cv2.resize(rng.random((size // 8, size // 8, 3), dtype=np.float32), (size + 8, size + 8))
    f0, f1 = np.ascontiguousarray(base[:size, :size]), np.ascontiguousarray(base[4:, 4:][:size, :size])
    previous = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        return _median_ms(lambda: interp_fusion.fuse_frame(f0, f0, f1, 0.5, interp_fusion.pair_flows(f0, f1)), runs)
    finally:
        cv2.setNumThreads(previous)


def cpu_ms_per_pair(model_name: str, weights: Optional[Path] = None, size: int = SPEED_SIZE,
                    threads: int = SPEED_THREADS, runs: int = SPEED_RUNS) -> tuple:
    """(median ms of one size x size pair at t=0.5, runtime): ONNX Runtime on `threads` CPU threads
    (the model exported to a temporary file, opset 17), or torch when onnxruntime is not installed.
    The CPU may be shared: compare models measured in the same run, not across runs."""
    model = load_model(model_name, weights).eval()
    io = get_spec(model_name).io
    rng = np.random.default_rng(0)
    feeds = {t.name: (rng.random(t.concrete_shape(1, size, size), dtype=np.float32) if t.is_image
                      else np.full(t.concrete_shape(1, size, size), 0.5, np.float32)) for t in io.inputs}
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is None:
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        args = [torch.from_numpy(feeds[t.name]) for t in io.inputs]
        with torch.inference_mode():
            call = lambda: model(*args)  # noqa: E731
            ms = _median_ms(call, runs)
        torch.set_num_threads(torch_threads)
        return ms, "torch"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(model, tuple(torch.from_numpy(feeds[t.name]) for t in io.inputs), str(path), dynamo=False,
                          input_names=list(io.input_names), output_names=list(io.output_names), opset_version=17)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return _median_ms(lambda: session.run(None, feeds), runs), "onnxruntime"


def _median_ms(call, runs: int) -> float:
    """The median of `runs` timed calls in ms, after 3 untimed warm-up calls (serve.bench.time_runs)."""
    return round(float(np.median(time_runs(call, runs, warmup=3, cuda=False))), 1)


load_one_set = load_triplets  # (set name, --limit) -> what evaluate_job takes per set


def plan(args) -> List[str]:
    """--model names; 'MODEL+dis' (serve/interp_fusion.py) for any trained interpolation MODEL."""
    names = [n.strip() for n in str(args.model).split(",") if n.strip()]
    plain = [interp_fusion.split_name(n) or n for n in names if n != DIS_ONLY]
    if plain:
        select_models(",".join(plain), "interpolate", BASELINE)  # validates
    return select_models(args.model, "interpolate", BASELINE) if names == ["all"] else names



def evaluate_job(name, sets, args) -> List[dict]:
    return evaluate_interpolation(name, sets, args.weights if name not in (BASELINE, DIS_ONLY) else None, args.device)


def line(r: dict) -> str:
    speed = f", {r['cpu_ms_256']:.1f} ms/256² pair ({r['runtime']})" if "cpu_ms_256" in r else ""
    return (f"{r['model']:<16} {r['set']:<10} PSNR {r['psnr']:.3f} dB  SSIM {r['ssim']:.4f}  "
            f"({r['images']} triplets, {r['seconds']:.2f} s{speed})")


def table(rows: List[dict], sets: List[str], args=None) -> str:
    def speed(per_set: dict) -> str:
        first = next(iter(per_set.values()))
        return f"{first['cpu_ms_256']:.1f}" if "cpu_ms_256" in first else "-"

    body = [[model, *(f"{per_set[s]['psnr']:.2f} / {per_set[s]['ssim']:.4f}" if s in per_set else "-" for s in sets),
             speed(per_set)] for (model,), per_set in by_model_and_set(rows).items()]
    return markdown_table(["model", *(f"{s} PSNR / SSIM" for s in sets), "CPU ms / 256² pair"], body)
