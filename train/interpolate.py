"""Train a frame interpolator: `python -m train.interpolate --model flowinterp --iters 4000 --publish`.

Triplets are synthetic (train/interp_data.py: camera motion + moving patches on the still images
of $STSR_DATA/train), drawn at several timesteps t, mixed (--video-fraction) with real-motion
triplets from the clips in $STSR_DATA/video (gaps of 2-5 frames at 1/2 and 1/4 size, every
in-between t); one clip (--val-clip) is held out and validated on as `val_video_psnr`. Same
run-directory conventions as train.sr: resumes automatically, EMA weights, metrics.csv,
--time-budget stops with a checkpoint, --publish copies the EMA weights to weights/NAME.safetensors.
Models with `forward_levels` (the flow model) also get a lighter loss on each coarse level's fused frame
(deep supervision speeds up training).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from common.metrics import psnr_rgb
from common.paths import data_root

from . import distributed
from .data import DataError, load_folder, split_validation
from .interp_data import (
    MixedTripletDataset,
    MotionConfig,
    TripletDataset,
    heldout_triplets,
    load_clips,
    video_validation,
)
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


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.interpolate", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="registered interpolate model (flowinterp, convlstm_interp)")
    p.add_argument("--iters", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--patch", type=int, default=128, help="side of the synthetic crops")
    p.add_argument("--max-shift", type=float, default=12.0, help="camera translation over the gap, pixels")
    p.add_argument("--still-fraction", type=float, default=0.25,
                   help="share of near-static triplets (the shipped weights were trained without them, i.e. 0)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--loss", choices=["l1", "mse", "charbonnier"], default="charbonnier")
    p.add_argument("--level-weight", type=float, default=0.25, help="loss weight of each coarse level's fused frame")
    p.add_argument("--distill-weight", type=float, default=0.0,
                   help="weight of an L1 term pulling the model's flows towards DIS's (common/dis_flow.py), where "
                        "DIS's two warped frames agree; models with forward_with_flow (convlstm_interp)")
    p.add_argument("--ema", type=float, default=0.995, help="EMA decay (0 disables)")
    p.add_argument("--val-count", type=int, default=10, help="training images held out for validation")
    p.add_argument("--init-from", type=Path, default=None, help="start from a checkpoint's matching tensors")
    p.add_argument("--grow", action="store_true",
                   help="with --init-from: embed a narrower model's tensors in this wider one (same function)")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--video-dir", type=Path, default=None, help="real clips (default $STSR_DATA/video; 'none': off)")
    p.add_argument("--video-fraction", type=float, default=0.7, help="share of real-video triplets in a batch")
    p.add_argument("--max-gap", type=int, default=5, help="largest frame distance of a video triplet (>= 2)")
    p.add_argument("--val-clip", default="05_juggle", help="clip held out of training, validated on")
    p.add_argument("--video-cache", type=Path, default=Path("runs/video_cache"), help="decoded frames (.npy)")
    add_run_arguments(p, val_every=500, threads_default=1)
    return p.parse_args(argv)


def check_args(args):
    spec = spec_for_task_or_exit("interpolate", args.model)
    if args.patch < 32:
        raise SystemExit(f"error: --patch {args.patch} is too small for the flow pyramid; use >= 32")
    if args.iters < 1 or args.batch_size < 1:
        raise SystemExit("error: --iters and --batch-size must be positive")
    return spec


def dis_targets(f0: torch.Tensor, f1: torch.Tensor, t: torch.Tensor, sigma: float = 0.05) -> tuple:
    """DIS's intermediate flows for a batch, (N,4,H,W) F_t->0, F_t->1, and a confidence (N,1,H,W): where the
    two frames warped along them agree (exp(-(d / sigma)^2)), so occlusions and DIS's errors teach nothing."""
    from common.dis_flow import agreement, intermediate_flows, make_flow_estimator, pair_flows, warps_at

    flow_of = make_flow_estimator()
    targets, weights = [], []
    for a, b, tt in zip(f0.cpu().numpy(), f1.cpu().numpy(), t.view(-1).tolist()):
        a, b = np.ascontiguousarray(a.transpose(1, 2, 0)), np.ascontiguousarray(b.transpose(1, 2, 0))
        flows = pair_flows(a, b, flow_of)
        weights.append(agreement(*warps_at(a, b, tt, flows), sigma)[None])
        targets.append(np.concatenate(intermediate_flows(*flows, tt), -1).transpose(2, 0, 1))
    as_tensor = lambda xs: torch.from_numpy(np.stack(xs).astype(np.float32)).to(f0.device)  # noqa: E731
    return as_tensor(targets), as_tensor(weights)


@torch.no_grad()
def validate(model, triplets, device) -> float:
    scores = []
    for f0, ft, f1, t in triplets:
        x0, x1 = (torch.from_numpy(f.transpose(2, 0, 1)).unsqueeze(0).to(device) for f in (f0, f1))
        pred = model(x0, x1, torch.full((1, 1, 1, 1), t, device=device)).clamp_(0, 1)
        scores.append(psnr_rgb(pred[0].cpu().numpy().transpose(1, 2, 0), ft))
    return float(np.mean(scores)) if scores else float("nan")


def main(argv=None) -> int:
    args = parse_args(argv)
    spec = check_args(args)
    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    device = distributed.setup(pick_device(args.device))
    precision = resolve_precision(args.precision, device)
    data_dir = args.data or data_root() / "train"
    cfg = MotionConfig(size=args.patch, max_shift=args.max_shift, patch_shift=args.max_shift + 2,
                       still_fraction=args.still_fraction)
    try:
        images, names = load_folder(data_dir, limit=args.data_limit)
        train_imgs, _, val_imgs, val_names = split_validation(images, names, args.val_count)
        dataset = TripletDataset(train_imgs, cfg, seed=args.seed)
        video_dir = None if str(args.video_dir) == "none" else (args.video_dir or data_root() / "video")
        clips = load_clips(video_dir, args.video_cache) if video_dir and args.video_fraction > 0 else {}
        val_clip = clips.pop(args.val_clip, None)
        if clips:
            dataset = MixedTripletDataset(clips, dataset, args.patch, args.video_fraction, args.max_gap, args.seed)
    except DataError as exc:
        raise SystemExit(f"error: {exc}") from None
    val = heldout_triplets(val_imgs, size=min(192, 2 * args.patch), seed=args.seed + 1)
    val_video = video_validation(val_clip) if val_clip is not None else []

    model = spec.build().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.99))
    ema = EMA(model, args.ema) if args.ema > 0 else None
    run_dir, state, step = open_run(args, spec.name, model, optimizer, ema, device)

    loader = DataLoader(dataset, batch_size=distributed.local_batch(args.batch_size),
                        sampler=distributed.ShardedCountingSampler(step, args.batch_size),
                        num_workers=args.workers, persistent_workers=args.workers > 0)
    meta = {"model": spec.name, "task": spec.task, "scale": spec.scale,
            "data": {"train_dir": str(data_dir), "train_images": len(train_imgs), "val_images": val_names,
                     "generator": "train/interp_data.py synthetic camera motion + moving patches",
                     "patch": args.patch, "max_shift": args.max_shift, "still_fraction": args.still_fraction,
                     "batch_size": args.batch_size, "video_clips": sorted(clips), "val_clip": args.val_clip,
                     "video_fraction": args.video_fraction if clips else 0.0, "max_gap": args.max_gap},
            **run_description(args, device)}
    levels = hasattr(model, "forward_levels") and args.level_weight > 0
    distill = args.distill_weight > 0
    if distill and not hasattr(model, "forward_with_flow"):
        raise SystemExit(f"error: --distill-weight needs a model that returns its flows; {spec.name} does not")
    meta["distill_weight"] = args.distill_weight
    net = distributed.Replicated(model, device)
    run = RunRecorder(run_dir, ["step", "loss", "lr", "val_psnr", "val_video_psnr"], model=model,
                      optimizer=optimizer, ema=ema,
                      arch=spec.arch, model_args=dict(spec.kwargs), meta=meta, state=state, step=step,
                      budget_s=args.time_budget)
    clock = run.clock
    batches = iter(loader)

    def train_step(step: int) -> dict:
        f0, ft, f1, t = (x.to(device) for x in next(batches))
        t = t.view(-1, 1, 1, 1)
        for group in optimizer.param_groups:
            group["lr"] = scheduled_lr(args, step, clock)
        flow = None
        with autocast(precision, device):
            if distill:
                out, flow = net.call("forward_with_flow", f0, f1, t)
                outs = [out]
            else:
                outs = net.call("forward_levels", f0, f1, t, all_levels=True) if levels else [net(f0, f1, t)]
        outs = [o.float() for o in outs]
        loss = pixel_loss(args.loss, outs[-1], ft)
        if levels and not distill:
            loss = loss + args.level_weight * sum(pixel_loss(args.loss, o, ft) for o in outs[:-1])
        if distill and flow is not None:
            target, confidence = dis_targets(f0, f1, t)
            loss = loss + args.distill_weight * (confidence * (flow.float() - target).abs()).mean()
        optimizer_step(model, optimizer, loss, ema, step)
        return {"loss": loss, "lr": optimizer.param_groups[0]["lr"]}

    step = train_loop(run, args, step, name=spec.name, train_step=train_step, training=[model],
                      validate=lambda m: {"val_psnr": validate(m, val, device),
                                          **({"val_video_psnr": validate(m, val_video, device)} if val_video else {})},
                      describe=lambda row, s: f"loss {row['loss']:.4f} val PSNR {s['val_psnr']:.3f} dB"
                      + (f", held-out clip {s['val_video_psnr']:.3f} dB" if "val_video_psnr" in s else ""))
    run.finish(step, args.iters, spec.weights_path, args.publish)
    return 0


if __name__ == "__main__":
    sys.exit(main())
