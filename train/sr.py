"""Train a registered SR model: `python -m train.sr --model flashsr --scale 4 --iters 20000`.

Runs unchanged on CPU and CUDA (`--device auto`; `--precision auto` uses bf16 autocast where native).
Resumes from the run directory automatically; `--time-budget` stops cleanly with a checkpoint before a deadline so
long runs can be done in chunks. `--publish` writes the EMA weights to weights/NAME.safetensors.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from common.degradations import PRESETS
from common.metrics import psnr_y
from common.paths import data_root

from . import distributed
from .data import (
    CLEAN_FRACTION,
    DEGRADATIONS,
    DataError,
    PatchConfig,
    SRPatchDataset,
    load_folder,
    split_validation,
    validation_pairs,
)
from .loop import (
    EMA,
    RunRecorder,
    add_run_arguments,
    autocast,
    default_workers,
    open_run,
    optimizer_step,
    pick_device,
    resolve_precision,
    run_description,
    run_progress,
    scheduled_lr,
    spec_for_task_or_exit,
    train_loop,
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.sr", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="registered name (flashsr_x4) or family (flashsr) with --scale")
    p.add_argument("--scale", type=int, default=None)
    p.add_argument("--iters", type=int, default=20000, help="total optimizer steps of the run")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--patch", type=int, default=48, help="LR patch side (HR side = patch x scale)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--loss", choices=["l1", "mse", "charbonnier"], default="l1")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay (0 disables)")
    add_degradation_arguments(p)
    p.add_argument("--dropout", type=float, default=None, help="override the model's dropout p")
    p.add_argument("--val-count", type=int, default=10, help="training images held out for validation")
    p.add_argument("--init-from", type=Path, default=None, help="start from a checkpoint's matching tensors")
    p.add_argument("--kl-weight", type=float, default=1e-3, help="VAE models: final weight of the KL term")
    p.add_argument("--kl-warmup", type=float, default=0.3,
                   help="VAE models: fraction of --iters over which the KL weight ramps up linearly from 0")
    p.add_argument("--workers", type=int, default=None)
    add_run_arguments(p, val_every=1000, threads_default=0)
    return p.parse_args(argv)


def add_degradation_arguments(p: argparse.ArgumentParser) -> None:
    """The LR degradation flags train.sr and train.gan share."""
    p.add_argument("--degradation", choices=sorted(DEGRADATIONS), default="bicubic",
                   help="real: two-stage blur/resize/noise/JPEG (common.degradations) at a random level, fed to "
                        "strength models as their denoise strength")
    p.add_argument("--val-degradation", choices=["auto", "bicubic", *PRESETS], default="auto",
                   help="validation LR: auto = real-medium for --degradation real, else bicubic")
    p.add_argument("--val-strength", type=float, default=0.5, help="strength models: the strength validation uses")
    p.add_argument("--clean-fraction", type=float, default=CLEAN_FRACTION,
                   help="real: share of clean bicubic patches, given strength 0 (keeps clean input sharp)")


def sr_spec_or_exit(args: argparse.Namespace):
    """The SR model --model/--scale name, checked against --patch; a clear message and exit if not."""
    spec = spec_for_task_or_exit("sr", args.model, args.scale)
    if not 0 <= args.val_strength <= 1:
        raise SystemExit("error: --val-strength must be in [0, 1]")
    if args.patch < spec.min_patch:
        raise SystemExit(f"error: --patch {args.patch} is smaller than {spec.name}'s receptive field / "
                         f"downsampling; use >= {spec.min_patch}")
    return spec


def check_args(args: argparse.Namespace):
    """Stop at once, with a clear message, on flags that make no sense."""
    spec = sr_spec_or_exit(args)
    if args.patch % spec.pad_multiple:
        raise SystemExit(f"error: --patch must be a multiple of {spec.pad_multiple} for {spec.name}")
    if args.kl_weight < 0 or not 0 <= args.kl_warmup <= 1:
        raise SystemExit("error: --kl-weight must be >= 0 and --kl-warmup in [0, 1]")
    if args.iters < 1 or args.batch_size < 1:
        raise SystemExit("error: --iters and --batch-size must be positive")
    if args.dropout is not None and not 0 <= args.dropout < 1:
        raise SystemExit("error: --dropout must be in [0, 1)")
    return spec


def kl_weight(args: argparse.Namespace, progress: float) -> float:
    """VAE KL weight: a linear ramp from 0 over the first --kl-warmup of the run's progress (so
    the decoder becomes useful before the latent is squeezed), then --kl-weight."""
    return args.kl_weight * (min(1.0, progress / args.kl_warmup) if args.kl_warmup > 0 else 1.0)


def pixel_loss(name: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if name == "l1":
        return F.l1_loss(pred, target)
    if name == "mse":
        return F.mse_loss(pred, target)
    return torch.sqrt((pred - target) ** 2 + 1e-6).mean()


def strength_kwargs(model, strength) -> dict:
    """The strength keyword for models that take one (FlashSR real variants), else nothing."""
    return {"strength": strength} if getattr(model, "has_strength", False) else {}


@torch.no_grad()
def validate(model, pairs, device, scale: int, strength: float = 0.5) -> float:
    scores = []
    for lr, hr in pairs:
        x = torch.from_numpy(lr.transpose(2, 0, 1)).unsqueeze(0).to(device)
        s = torch.full((1, 1), float(strength), device=device)
        sr = model(x, **strength_kwargs(model, s)).clamp_(0, 1)[0].float().cpu().numpy().transpose(1, 2, 0)
        scores.append(psnr_y(sr, hr, crop=scale))
    return float(np.mean(scores)) if scores else float("nan")


def prepare_sr_run(args: argparse.Namespace, spec, degradation: str):
    """Seed, threads, device and data of an SR run (train.sr and train.gan): returns
    (device, data_dir, patch dataset, training image count, validation pairs, validation names)."""
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
        import cv2  # the real degradations use OpenCV: keep it to the same thread budget
        cv2.setNumThreads(args.threads)
    device = distributed.setup(pick_device(args.device))
    data_dir = args.data or data_root() / "train"
    try:
        images, names = load_folder(data_dir, limit=args.data_limit)
        train_imgs, _, val_imgs, val_names = split_validation(images, names, args.val_count)
        clean_fraction = getattr(args, "clean_fraction", CLEAN_FRACTION)
        if not 0.0 <= clean_fraction <= 1.0:
            raise DataError(f"--clean-fraction must be in [0, 1], not {clean_fraction}")
        config = PatchConfig(spec.scale, args.patch, degradation, clean_fraction=clean_fraction)
        dataset = SRPatchDataset(train_imgs, config, seed=args.seed)
    except DataError as exc:
        raise SystemExit(f"error: {exc}") from None
    val_degradation = getattr(args, "val_degradation", "auto")
    if val_degradation == "auto":
        val_degradation = "real-medium" if degradation == "real" else "bicubic"
    val = validation_pairs(val_imgs, spec.scale, lr_multiple=spec.pad_multiple,
                           preset="" if val_degradation == "bicubic" else val_degradation)
    return device, data_dir, dataset, len(train_imgs), val, val_names


def main(argv=None) -> int:
    args = parse_args(argv)
    spec = check_args(args)
    device, data_dir, dataset, train_count, val, val_names = prepare_sr_run(args, spec, args.degradation)

    overrides = {} if args.dropout is None else {"dropout": args.dropout}
    model = spec.build(**overrides).to(device)
    model_args = {**spec.kwargs, **overrides}
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.99))
    ema = EMA(model, args.ema) if args.ema > 0 else None
    run_dir, state, step = open_run(args, spec.name, model, optimizer, ema, device)
    if step >= args.iters:
        print(f"run already at {step} >= --iters {args.iters}", file=sys.stderr)

    workers = default_workers(device) if args.workers is None else args.workers
    loader = DataLoader(dataset, batch_size=distributed.local_batch(args.batch_size),
                        sampler=distributed.ShardedCountingSampler(step, args.batch_size),
                        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                        prefetch_factor=4 if workers > 0 else None)
    precision = resolve_precision(args.precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = model.to(memory_format=torch.channels_last)  # CUDA and oneDNN (CPU) both run NHWC faster
    net = distributed.Replicated(model, device)  # training forwards: through DDP under torchrun
    vae_fields = ["kl", "kl_weight"] if hasattr(model, "last_kl") else []
    meta = {"model": spec.name, "task": spec.task, "scale": spec.scale,
            "data": {"train_dir": str(data_dir), "train_images": train_count, "val_images": val_names,
                     "degradation": args.degradation, "lr_patch": args.patch, "batch_size": args.batch_size,
                     "val_degradation": args.val_degradation, "val_strength": args.val_strength},
            **run_description(args, device)}
    if hasattr(model, "last_kl"):
        meta["vae"] = {"kl_weight": args.kl_weight, "kl_warmup_fraction": args.kl_warmup,
                       "kl": "mean per latent element, added to the pixel loss"}
    run = RunRecorder(run_dir, ["step", "loss", *vae_fields, "lr", "val_psnr_y"], model=model, optimizer=optimizer,
                      ema=ema, arch=spec.arch, model_args=model_args, meta=meta, state=state, step=step,
                      budget_s=args.time_budget)
    clock = run.clock
    batches = iter(loader)

    def train_step(step: int) -> dict:
        lr_t, hr_t, *rest = (t.to(device, non_blocking=True) for t in next(batches))
        strength = rest[0] if rest else torch.zeros(lr_t.shape[0], 1, device=device)
        lr_t = lr_t.contiguous(memory_format=torch.channels_last)
        for group in optimizer.param_groups:
            group["lr"] = scheduled_lr(args, step, clock)
        with autocast(precision, device):
            pred = net(lr_t, **strength_kwargs(model, strength))
        loss = pixel_loss(args.loss, pred.float(), hr_t)
        row = {"loss": loss}
        kl = getattr(model, "last_kl", None)  # VAE models expose their KL divergence after a training pass
        if kl is not None:
            row["kl_weight"] = kl_weight(args, run_progress(args, step, clock))
            row["kl"] = kl
            loss = loss + row["kl_weight"] * kl.float()
        optimizer_step(model, optimizer, loss, ema, step)
        return {**row, "lr": optimizer.param_groups[0]["lr"]}

    step = train_loop(run, args, step, name=spec.name, train_step=train_step, training=[model],
                      validate=lambda m: {"val_psnr_y": validate(m, val, device, spec.scale, args.val_strength)},
                      describe=lambda row, s: f"loss {row['loss']:.4f} val Y-PSNR {s['val_psnr_y']:.3f} dB")
    run.finish(step, args.iters, spec.weights_path, args.publish)
    return 0


if __name__ == "__main__":
    sys.exit(main())
