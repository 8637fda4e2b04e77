"""Train the recurrent video SR model: `python -m train.vsr --model vsr_x4 --precision bf16 --threads 1`.

A fresh run warm-starts the FlashSR part from weights/flashsr_xS and the flow blocks from
weights/flowinterp (models/vsr.py: the zero-initialised fusion makes the start exactly per-frame
FlashSR), so the short CPU budget is spent on what the neighbouring frames add. HR clips of --frames
frames come from the real videos (720p halved) mixed with synthetic camera paths over the still
training images (train/vsr_data.py); LR is bicubic (antialiased, 8-bit rounded) made on the batch.
The pretrained parts learn at --pretrained-lr-factor of the new fusion's rate. Validation: held-out
clip --val-clip, mean RGB PSNR over all frames, and the gain over the same model at frame 0 (= FlashSR
alone on every frame) as `val_gain`. Run-directory conventions as train.sr (resume, EMA, metrics.csv,
--time-budget, --publish).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from common.metrics import psnr_rgb
from common.paths import WEIGHTS_DIR, data_root
from models.checkpoint import CheckpointError, read_weights

from . import distributed
from .data import DataError, load_folder, split_validation
from .loop import (
    EMA,
    RunRecorder,
    add_run_arguments,
    autocast,
    open_run,
    optimizer_step,
    pick_device,
    resolve_precision,
    run_description,
    scheduled_lr,
    spec_for_task_or_exit,
    train_loop,
)
from .sr import pixel_loss
from .vsr_data import ClipDataset, load_hr_clips, validation_clips


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.vsr", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="vsr_x4", help="registered vsr model")
    p.add_argument("--iters", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--frames", type=int, default=6, help="frames per training clip (the recurrence unrolled)")
    p.add_argument("--patch", type=int, default=32, help="LR patch side (HR = patch x scale)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--pretrained-lr-factor", type=float, default=0.2,
                   help="LR multiplier of the warm-started FlashSR (and flow, unless --flow-lr-factor) weights")
    p.add_argument("--flow-lr-factor", type=float, default=None,
                   help="LR multiplier of the warm-started flow blocks (0 freezes them: no backward through the flow)")
    p.add_argument("--fuse-at", choices=["head", "trunk"], default=None,
                   help="override the spec's fuse_at (models/vsr.py: before or after FlashSR's body)")
    p.add_argument("--flow-time", type=float, default=None,
                   help="override the spec's flow_time (0.5 aligns far better than the shipped 0; models/vsr.py)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--loss", choices=["l1", "mse", "charbonnier"], default="charbonnier")
    p.add_argument("--ema", type=float, default=0.99, help="EMA decay (0 disables)")
    p.add_argument("--video-fraction", type=float, default=0.7, help="share of real-video clips in a batch")
    p.add_argument("--max-stride", type=int, default=2, help="largest frame step inside a real clip")
    p.add_argument("--video-dir", type=Path, default=None, help="real clips (default $STSR_DATA/video; 'none': off)")
    p.add_argument("--video-cache", type=Path, default=Path("runs/video_cache"), help="decoded frames (.npy)")
    p.add_argument("--val-clip", default="05_juggle", help="clip held out of training, validated on")
    p.add_argument("--val-count", type=int, default=10, help="training images held out (unused by validation)")
    p.add_argument("--init-sr", type=Path, default=None, help="FlashSR weights to start from (default flashsr_xS)")
    p.add_argument("--init-flow", type=Path, default=None, help="flow weights to start from (default flowinterp)")
    p.add_argument("--workers", type=int, default=0)
    add_run_arguments(p, val_every=100, threads_default=1)
    return p.parse_args(argv)


def check_args(args):
    spec = spec_for_task_or_exit("vsr", args.model)
    if args.patch < spec.min_patch:
        raise SystemExit(f"error: --patch {args.patch} is below {spec.min_patch} (the flow pyramid needs room)")
    if args.iters < 1 or args.batch_size < 1 or args.frames < 2:
        raise SystemExit("error: --iters and --batch-size must be positive and --frames at least 2")
    return spec


def parameter_groups(model, args) -> list:
    """The new fusion at the full rate, FlashSR at --pretrained-lr-factor, the flow blocks at
    --flow-lr-factor (default: the same); a factor of 0 freezes a part outright, so a step does not
    pay for its backward pass."""
    flow_factor = args.pretrained_lr_factor if args.flow_lr_factor is None else args.flow_lr_factor
    factors = {"fuse": 1.0, "sr": args.pretrained_lr_factor, "flow": flow_factor}
    groups = {"fuse": [], "sr": [], "flow": []}
    for name, param in model.named_parameters():
        part = name.split(".", 1)[0]
        part = part if part in groups else "sr"
        param.requires_grad_(factors[part] != 0)
        if factors[part] != 0:
            groups[part].append(param)
    return [{"params": params, "factor": factors[part]} for part, params in groups.items() if params]


def warm_start(model, scale: int, sr_path, flow_path) -> None:
    """Copy FlashSR and FlowInterp weights into the video model (its fusion stays zero)."""
    sr_path = Path(sr_path or WEIGHTS_DIR / f"flashsr_x{scale}.safetensors")
    flow_path = Path(flow_path or WEIGHTS_DIR / "flowinterp.safetensors")
    try:
        model.sr.load_state_dict(read_weights(sr_path))
        flow = {k: v for k, v in read_weights(flow_path).items() if not k.startswith("refine.")}
        model.flow.load_state_dict(flow)
    except (CheckpointError, RuntimeError) as exc:
        raise SystemExit(f"error: warm start failed: {exc}") from None
    print(f"warm start: FlashSR from {sr_path}, flow from {flow_path}", file=sys.stderr)


def make_lr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """(N,T,3,H,W) HR -> LR by antialiased bicubic, rounded to 8 bits like the benchmark PNGs."""
    n, t, c, h, w = hr.shape
    lr = F.interpolate(hr.reshape(n * t, c, h, w), size=(h // scale, w // scale), mode="bicubic",
                       align_corners=False, antialias=True)
    return (lr.clamp(0, 1) * 255).round().div(255).reshape(n, t, c, h // scale, w // scale)


@torch.no_grad()
def validate(model, clips, scale: int) -> dict:
    """Mean RGB PSNR over all frames, and its gain over the first-frame (no history) output of each frame."""
    full, alone = [], []
    for seq in clips:
        hr = torch.from_numpy(np.ascontiguousarray(seq.transpose(0, 3, 1, 2)))[None]
        lr = make_lr(hr, scale)
        out = model(lr).clamp(0, 1)[0]
        restart = [True] * lr.shape[1]
        single = model(lr, restart=restart).clamp(0, 1)[0]
        for t in range(hr.shape[1]):
            ref = seq[t]
            full.append(psnr_rgb(out[t].numpy().transpose(1, 2, 0), ref, crop=scale))
            alone.append(psnr_rgb(single[t].numpy().transpose(1, 2, 0), ref, crop=scale))
    return {"val_psnr": float(np.mean(full)), "val_gain": float(np.mean(full) - np.mean(alone))}


def main(argv=None) -> int:
    args = parse_args(argv)
    spec = check_args(args)
    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    device = distributed.setup(pick_device(args.device))
    precision = resolve_precision(args.precision, device)
    data_dir = args.data or data_root() / "train"
    hr_size = args.patch * spec.scale
    try:
        images, names = load_folder(data_dir, limit=args.data_limit)
        train_imgs, _, _, _ = split_validation(images, names, args.val_count)
        video_dir = None if str(args.video_dir) == "none" else (args.video_dir or data_root() / "video")
        clips = load_hr_clips(video_dir, args.video_cache) if video_dir and args.video_fraction > 0 else {}
        val_clip = clips.pop(args.val_clip, None)
        dataset = ClipDataset(train_imgs, clips, frames=args.frames, size=hr_size,
                              video_fraction=args.video_fraction, max_stride=args.max_stride, seed=args.seed)
    except DataError as exc:
        raise SystemExit(f"error: {exc}") from None
    val = validation_clips(val_clip, size=min(4 * hr_size, 256)) if val_clip is not None else []

    overrides = {"flow_time": args.flow_time, "fuse_at": args.fuse_at}
    model_args = {**spec.kwargs, **{k: v for k, v in overrides.items() if v is not None}}
    model = spec.build(**model_args).to(device)
    optimizer = torch.optim.AdamW(parameter_groups(model, args), lr=args.lr, weight_decay=args.weight_decay,
                                  betas=(0.9, 0.99))
    ema = EMA(model, args.ema) if args.ema > 0 else None
    run_dir, state, step = open_run(args, spec.name, model, optimizer, ema, device)
    if state is None:
        warm_start(model, spec.scale, args.init_sr, args.init_flow)
        if ema:
            ema.model.load_state_dict(model.state_dict())

    loader = DataLoader(dataset, batch_size=distributed.local_batch(args.batch_size),
                        sampler=distributed.ShardedCountingSampler(step, args.batch_size),
                        num_workers=args.workers, persistent_workers=args.workers > 0)
    meta = {"model": spec.name, "task": spec.task, "scale": spec.scale,
            "data": {"train_dir": str(data_dir), "train_images": len(train_imgs), "video_clips": sorted(clips),
                     "val_clip": args.val_clip, "video_fraction": dataset.video_fraction, "frames": args.frames,
                     "hr_patch": hr_size, "hr_from_video": "720p decoded with PyAV, halved (INTER_AREA)",
                     "lr": "bicubic antialiased (torch), 8-bit rounded", "batch_size": args.batch_size},
            **run_description(args, device)}
    net = distributed.Replicated(model, device)
    run = RunRecorder(run_dir, ["step", "loss", "lr", "val_psnr", "val_gain"], model=model, optimizer=optimizer,
                      ema=ema, arch=spec.arch, model_args=model_args, meta=meta, state=state, step=step,
                      budget_s=args.time_budget)
    batches = iter(loader)

    def train_step(step: int) -> dict:
        hr = next(batches).to(device)
        lr_clip = make_lr(hr, spec.scale)
        base = scheduled_lr(args, step, run.clock)
        for group in optimizer.param_groups:
            group["lr"] = base * group["factor"]
        with autocast(precision, device):
            out = net(lr_clip)
        loss = pixel_loss(args.loss, out.float(), hr)
        optimizer_step(model, optimizer, loss, ema, step)
        return {"loss": loss, "lr": base}

    step = train_loop(run, args, step, name=spec.name, train_step=train_step, training=[model], record_every=10,
                      validate=lambda m: validate(m, val, spec.scale) if val else {},
                      describe=lambda row, s: f"loss {row['loss']:.4f}" + (
                          f" val PSNR {s['val_psnr']:.3f} dB (+{s['val_gain']:.3f} over no history)" if s else ""))
    run.finish(step, args.iters, spec.weights_path, args.publish)
    return 0


if __name__ == "__main__":
    sys.exit(main())
