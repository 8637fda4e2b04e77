"""Adversarial SR training:
`python -m train.gan --model swift_srgan_x4 --init-from weights/swift_srgan_psnr_x4.safetensors`.

Generator loss = pixel (L1/MSE) + adversarial + total variation + feature matching. The seeds'
content loss compares VGG19 / MobileNetV2 features, but pretrained weights cannot be downloaded
here, so the content term compares the discriminator's own block features of SR and HR (feature
matching, Salimans et al. 2016): a learned perceptual space that needs no outside weights.
The first `--pixel-warmup` steps train the generator on the pixel loss alone (skip them when
starting from a PSNR-trained generator). Every loss term goes to the run's metrics.csv; the run
folder checkpoints both networks (model.safetensors = EMA generator, discriminator.safetensors,
state.pt for resuming), and --publish copies the generator to weights/NAME.safetensors.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from models import save_checkpoint
from models.registry import DISCRIMINATORS

from . import distributed
from .loop import (
    EMA,
    RunRecorder,
    add_run_arguments,
    autocast,
    default_workers,
    open_run,
    optimizer_step,
    resolve_precision,
    run_description,
    scheduled_lr,
    train_loop,
)
from .sr import add_degradation_arguments, pixel_loss, prepare_sr_run, sr_spec_or_exit, strength_kwargs, validate

LOSS_FIELDS = ["step", "loss_g", "pixel", "adversarial", "tv", "feature", "loss_d", "d_real", "d_fake", "lr",
               "val_psnr_y"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.gan", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True,
                   help="registered GAN model (srgan_x4, swift_srgan_x4, swift_srgan_x2, flashsr_real_gan_x4)")
    p.add_argument("--scale", type=int, default=None)
    p.add_argument("--init-from", type=Path, default=None, help="PSNR-trained generator to start from")
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--patch", type=int, default=24, help="LR patch side (HR side = patch x scale)")
    p.add_argument("--lr", type=float, default=1e-4, help="generator learning rate")
    p.add_argument("--lr-d", type=float, default=1e-4, help="discriminator learning rate")
    p.add_argument("--warmup", type=int, default=50, help="LR warm-up steps")
    p.add_argument("--pixel-warmup", type=int, default=0, help="generator-only pixel-loss steps before the GAN starts")
    p.add_argument("--pixel-loss", choices=["l1", "mse"], default="l1")
    p.add_argument("--w-pixel", type=float, default=1.0)
    p.add_argument("--w-adv", type=float, default=5e-3, help="adversarial weight")
    p.add_argument("--w-tv", type=float, default=1e-4, help="total-variation weight")
    p.add_argument("--w-feature", type=float, default=0.1, help="discriminator feature-matching weight")
    p.add_argument("--d-channels", type=int, default=32, help="discriminator base width")
    p.add_argument("--ema", type=float, default=0.99)
    p.add_argument("--val-count", type=int, default=10)
    p.add_argument("--workers", type=int, default=None)
    add_degradation_arguments(p)
    add_run_arguments(p, val_every=250, threads_default=0)
    return p.parse_args(argv)


def check_args(args: argparse.Namespace):
    """Stop at once, with a clear message, on flags that make no sense."""
    spec = sr_spec_or_exit(args)
    if not spec.adversarial or spec.arch not in DISCRIMINATORS:
        raise SystemExit(f"error: '{spec.name}' is not a GAN model; train it with train.sr "
                         f"(GAN models: {', '.join(s for s in _gan_names())})")
    if args.iters < 1 or args.batch_size < 2:
        raise SystemExit("error: --iters must be positive and --batch-size at least 2 (batch norm)")
    if min(args.w_pixel, args.w_adv, args.w_tv, args.w_feature) < 0:
        raise SystemExit("error: loss weights must be >= 0")
    if args.init_from is not None and not args.init_from.exists():
        raise SystemExit(f"error: --init-from {args.init_from} does not exist")
    return spec


def _gan_names():
    from models import REGISTRY
    return sorted(name for name, s in REGISTRY.items() if s.adversarial)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (anisotropic TV)."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def feature_matching(fake_feats, real_feats) -> torch.Tensor:
    """L1 between the discriminator's block features of SR and HR, averaged over blocks."""
    return sum(F.l1_loss(f, r.detach()) for f, r in zip(fake_feats, real_feats)) / len(fake_feats)


def generator_losses(args, discriminator, sr: torch.Tensor, hr: torch.Tensor, adversarial: bool,
                     precision: str = "fp32") -> dict:
    """Every generator loss term (tensors) and their weighted sum under 'loss_g'."""
    terms = {"pixel": pixel_loss(args.pixel_loss, sr, hr)}
    if adversarial:
        with autocast(precision, sr.device):
            fake_logits, fake_feats = discriminator(sr)
            with torch.no_grad():
                _, real_feats = discriminator(hr)
        fake_logits, fake_feats = fake_logits.float(), [f.float() for f in fake_feats]
        real_feats = [f.float() for f in real_feats]
        terms["adversarial"] = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        terms["tv"] = total_variation(sr)
        terms["feature"] = feature_matching(fake_feats, real_feats)
    weights = {"pixel": args.w_pixel, "adversarial": args.w_adv, "tv": args.w_tv, "feature": args.w_feature}
    terms["loss_g"] = sum(weights[k] * v for k, v in terms.items())
    return terms


def discriminator_step(discriminator, optimizer, sr: torch.Tensor, hr: torch.Tensor, precision: str = "fp32") -> dict:
    """One D update: real HR -> 0.9 (one-sided label smoothing), generated SR -> 0."""
    with autocast(precision, sr.device):
        real_logits, _ = discriminator(hr)
        fake_logits, _ = discriminator(sr.detach())
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    loss = (F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, 0.9))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"loss_d": loss.item(), "d_real": torch.sigmoid(real_logits).mean().item(),
            "d_fake": torch.sigmoid(fake_logits).mean().item()}


def main(argv=None) -> int:
    args = parse_args(argv)
    spec = check_args(args)
    device, data_dir, dataset, train_count, val, val_names = prepare_sr_run(args, spec, args.degradation)
    if distributed.local_batch(args.batch_size) < 2:
        raise SystemExit("error: --batch-size (the global batch) must give each process at least 2 (batch norm)")
    precision = resolve_precision(args.precision, device)

    generator = spec.build().to(device).to(memory_format=torch.channels_last)
    discriminator = DISCRIMINATORS[spec.arch](channels=args.d_channels).to(device).to(memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(generator.parameters(), lr=args.lr, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=args.lr_d, betas=(0.9, 0.99))
    ema = EMA(generator, args.ema) if args.ema > 0 else None
    run_dir, state, step = open_run(args, spec.name, generator, opt_g, ema, device)
    if state and "discriminator" in state["extra"]:
        discriminator.load_state_dict(state["extra"]["discriminator"])
        opt_d.load_state_dict(state["extra"]["d_optimizer"])

    workers = default_workers(device) if args.workers is None else args.workers
    loader = DataLoader(dataset, batch_size=distributed.local_batch(args.batch_size),
                        sampler=distributed.ShardedCountingSampler(step, args.batch_size),
                        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    d_arch = type(discriminator).__name__
    g_net, d_net = distributed.Replicated(generator, device), distributed.Replicated(discriminator, device)
    meta = {"model": spec.name, "task": spec.task, "scale": spec.scale, "adversarial": True,
            "losses": {"pixel": f"{args.pixel_loss} x {args.w_pixel}", "adversarial": f"BCE x {args.w_adv}",
                       "tv": f"x {args.w_tv}",
                       "feature_matching": f"discriminator block features, L1 x {args.w_feature} "
                                           "(stands in for a pretrained VGG/MobileNet)"},
            "discriminator": {"arch": d_arch, "channels": args.d_channels},
            "data": {"train_dir": str(data_dir), "train_images": train_count, "val_images": val_names,
                     "degradation": args.degradation, "lr_patch": args.patch, "batch_size": args.batch_size,
                     "val_degradation": args.val_degradation, "val_strength": args.val_strength},
            **run_description(args, device)}

    def save_discriminator(step: int) -> dict:
        save_checkpoint(run_dir / "discriminator.safetensors", discriminator, arch=d_arch,
                        args={"channels": args.d_channels}, meta={"generator": spec.name, "iterations": step})
        return {"discriminator": discriminator.state_dict(), "d_optimizer": opt_d.state_dict()}

    run = RunRecorder(run_dir, LOSS_FIELDS, model=generator, optimizer=opt_g, ema=ema, arch=spec.arch,
                      model_args=dict(spec.kwargs), meta=meta, state=state, step=step, budget_s=args.time_budget,
                      on_save=save_discriminator)
    clock = run.clock
    batches = iter(loader)

    def train_step(step: int) -> dict:
        lr_t, hr_t, *rest = (t.to(device, non_blocking=True) for t in next(batches))
        lr_t, hr_t = (t.contiguous(memory_format=torch.channels_last) for t in (lr_t, hr_t))
        strength = rest[0] if rest else torch.zeros(lr_t.shape[0], 1, device=device)
        lr_now = scheduled_lr(args, step, clock)
        for group in opt_g.param_groups:
            group["lr"] = lr_now
        for group in opt_d.param_groups:
            group["lr"] = lr_now * args.lr_d / args.lr
        adversarial = step >= args.pixel_warmup
        with autocast(precision, device):
            sr = g_net(lr_t, **strength_kwargs(generator, strength)).float()
        d_stats = discriminator_step(d_net, opt_d, sr, hr_t, precision) if adversarial else {}
        terms = generator_losses(args, d_net, sr, hr_t, adversarial, precision)
        optimizer_step(generator, opt_g, terms["loss_g"], ema, step)
        return {**terms, **d_stats, "lr": lr_now}

    step = train_loop(run, args, step, name=spec.name, train_step=train_step, training=[generator, discriminator],
                      validate=lambda g: {"val_psnr_y": validate(g, val, device, spec.scale, args.val_strength)},
                      record_every=25,
                      describe=lambda row, s: " ".join(f"{k} {v:.4g}" for k, v in row.items())
                      + f" val Y-PSNR {s['val_psnr_y']:.3f} dB")
    run.finish(step, args.iters, spec.weights_path, args.publish)
    return 0


if __name__ == "__main__":
    sys.exit(main())
