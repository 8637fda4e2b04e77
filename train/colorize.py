"""Train a colorization model: `python -m train.colorize --model colorize_lab --iters 2000`.

Colour training images (../shared/data/train) are made grey on the fly (L/100 of CIE Lab, see
models.lab_color), so the target is always the true colour. `--loss` picks seed 000's mse | mep |
ssim (on RGB, any model) or `chroma` (the Lab model's rebalanced ab loss, train/colorize_losses.py);
the default follows the model name (grey2rgb_mep -> mep, colorize_lab -> chroma). Same conventions
as train/sr.py: resumable run directory (runs/NAME), EMA weights, metrics.csv, --time-budget,
--publish. `--calibrate-gain` (Lab model) picks the chroma gain on the held-out images at the end.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from common.metrics import colorfulness, psnr_rgb
from common.paths import data_root
from models.lab_color import grey_from_rgb, grey_to_rgb, rgb_to_lab

from . import distributed
from .colorize_hints import bin_weights_from, load_folders, sample_hints, warm_start
from .colorize_losses import RGB_LOSSES, bin_classification_loss, chroma_loss, hinted_output_loss
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

LOSSES = sorted(RGB_LOSSES) + ["chroma", "classify"]
VAL_HINTS = 10  # validation also scores this many truth hints (hint models)
MIN_COLOURFULNESS = 5.0  # training images below this are (near) grey: they would teach sepia
GAINS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2.0)
COLOUR_TARGET = 0.5  # of the truth's colourfulness: the target (README)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.colorize", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="registered colorize model, e.g. colorize_lab, grey2rgb_mse")
    p.add_argument("--loss", choices=LOSSES, default=None, help="default: from the model name")
    p.add_argument("--saturation", type=float, default=1.0, help="chroma loss: weight of the saturation term")
    p.add_argument("--rebalance", type=float, default=1.0, help="chroma loss: extra weight of saturated pixels")
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--patch", type=int, default=128, help="training crop side")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--ema", type=float, default=0.995, help="EMA decay (0 disables)")
    p.add_argument("--val-count", type=int, default=16, help="training images held out for validation")
    p.add_argument("--calibrate-gain", action="store_true", help="Lab model: pick chroma_gain on validation")
    p.add_argument("--colour-target", type=float, default=COLOUR_TARGET,
                   help="gain rule: share of the truth's colourfulness the chosen gain must reach")
    p.add_argument("--also-data", type=str, nargs="*", default=[],
                   help="more image folders, e.g. $STSR_DATA/colorize/ImageNet1000")
    p.add_argument("--init-from", type=Path, default=None, help="start from a checkpoint's matching tensors")
    p.add_argument("--hinted-weight", type=float, default=0.0,
                   help="classify: weight of an L1 on the hinted output itself (network + spread hints) on "
                        "crops with hints, so the network learns to complement the weight-free spread")
    p.add_argument("--hinted-share", type=float, default=None,
                   help="hint models: the network's share of its chroma on an image with hints (default: "
                        "the model's); kept in the checkpoint's args")
    add_run_arguments(p, val_every=250, threads_default=0)
    return p.parse_args(argv)


def check_args(args: argparse.Namespace):
    """Stop at once, with a clear message, on flags that make no sense."""
    spec = spec_for_task_or_exit("colorize", args.model)
    if args.loss is None:
        suffix = spec.name.rsplit("_", 1)[-1]
        args.loss = suffix if suffix in RGB_LOSSES else "chroma"
        args.loss = "classify" if spec.kwargs.get("head") == "classify" else args.loss
    if (args.loss == "classify") != (spec.kwargs.get("head") == "classify"):
        raise SystemExit("error: --loss classify goes with a classification-head model (colorize_hint_cls) only")
    if args.loss == "chroma" and spec.arch not in ("colorize_lab", "colorize_hint"):
        raise SystemExit(f"error: --loss chroma needs a model that predicts Lab chroma (colorize_lab), not {spec.arch}")
    if args.calibrate_gain and spec.arch not in ("colorize_lab", "colorize_hint"):
        raise SystemExit("error: --calibrate-gain applies to the Lab model only")
    if args.patch < 16 or args.patch % spec.pad_multiple:
        raise SystemExit(f"error: --patch must be >= 16 and a multiple of {spec.pad_multiple} for {spec.name}")
    if args.hinted_weight and args.loss != "classify":
        raise SystemExit("error: --hinted-weight applies to the classification loss (colorize_hint_cls); "
                         "the chroma loss already scores the hinted output")
    if args.hinted_share is not None and spec.arch != "colorize_hint":
        raise SystemExit("error: --hinted-share applies to hint models (colorize_hint_*) only")
    if args.iters < 1 or args.batch_size < 1:
        raise SystemExit("error: --iters and --batch-size must be positive")
    return spec


class ColourPatchDataset(Dataset):
    """Random RGB crops (horizontal flips only: skies stay on top). Item i is seeded by (seed, i)."""

    def __init__(self, images, patch: int, seed: int = 0):
        self.images = [im for im in images if min(im.shape[:2]) >= patch]
        if not self.images:
            raise DataError(f"no colour training image is at least {patch}px a side; use a smaller --patch")
        self.patch, self.seed = patch, seed

    def __len__(self) -> int:
        return 1 << 40

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, index])
        img = self.images[int(rng.integers(len(self.images)))]
        y = int(rng.integers(0, img.shape[0] - self.patch + 1))
        x = int(rng.integers(0, img.shape[1] - self.patch + 1))
        crop = img[y: y + self.patch, x: x + self.patch]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))


def colour_only(images, names):
    """Drop grey (or nearly grey) training images."""
    keep = [(im, n) for im, n in zip(images, names) if colorfulness(im[::4, ::4]) >= MIN_COLOURFULNESS]
    return [k[0] for k in keep], [k[1] for k in keep]


def validation_crops(images, multiple: int, side: int = 256):
    """Centre crops (a multiple of the model's pad size) for quick validation."""
    crops = []
    for img in images:
        h, w = min(img.shape[0], side), min(img.shape[1], side)
        h, w = h - h % multiple, w - w % multiple
        if h >= multiple and w >= multiple:
            top, left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
            crops.append(np.ascontiguousarray(img[top: top + h, left: left + w]))
    return crops


def hint_feeds(model, rgb: np.ndarray, count: int, seed: int, device) -> tuple:
    """The hint tensors a hint model takes with `count` truth hints (none: automatic); () otherwise."""
    if not getattr(model, "hint_skip", None):
        return ()
    from models.hints import encode_hints, truth_hints

    feeds = encode_hints(truth_hints(rgb, count, seed), *rgb.shape[:2])
    return tuple(torch.from_numpy(f).to(device) for f in feeds)


@torch.no_grad()
def validate(model, crops, device, hints: int = 0) -> dict:
    """Mean RGB PSNR, colourfulness of the outputs and of the truth, and the grey baseline's PSNR
    (hint models: automatic mode, plus `val_psnr_hints` with VAL_HINTS truth hints when hints > 0)."""
    psnrs, grey_psnrs, colour, colour_gt, hinted = [], [], [], [], []
    for i, rgb in enumerate(crops):
        x = torch.from_numpy(rgb.transpose(2, 0, 1)).unsqueeze(0).to(device)
        grey = grey_from_rgb(x)
        out = model(grey, *hint_feeds(model, rgb, 0, i, device)).clamp(0, 1)[0].cpu().numpy().transpose(1, 2, 0)
        if hints and getattr(model, "hint_skip", None):
            with_hints = model(grey, *hint_feeds(model, rgb, hints, i, device)).clamp(0, 1)[0]
            hinted.append(psnr_rgb(with_hints.cpu().numpy().transpose(1, 2, 0), rgb))
        base = grey_to_rgb(grey)[0].cpu().numpy().transpose(1, 2, 0)
        psnrs.append(psnr_rgb(out, rgb))
        grey_psnrs.append(psnr_rgb(base, rgb))
        colour.append(colorfulness(out))
        colour_gt.append(colorfulness(rgb))
    mean = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
    scores = {"val_psnr": mean(psnrs), "val_grey_psnr": mean(grey_psnrs), "val_colorfulness": mean(colour),
              "val_colorfulness_gt": mean(colour_gt)}
    return {**scores, "val_psnr_hints": mean(hinted)} if hinted else scores


def calibrate_gain(model, crops, device, log=sys.stderr, target: float = COLOUR_TARGET) -> float:
    """The chroma gain for the shipped model, chosen on held-out images.

    Among gains whose PSNR beats the grey baseline, the smallest that reaches COLOUR_TARGET of the
    truth's colourfulness, else the most colourful of them; if none beats grey, the best PSNR.
    """
    original, rows = model.chroma_gain, []
    for gain in GAINS:
        model.chroma_gain = gain
        rows.append((gain, validate(model, crops, device)))
        r = rows[-1][1]
        print(f"gain {gain:.2f}: val PSNR {r['val_psnr']:.3f} (grey {r['val_grey_psnr']:.3f}) colourfulness "
              f"{r['val_colorfulness']:.1f} / {r['val_colorfulness_gt']:.1f}", file=log, flush=True)
    model.chroma_gain = original
    beat_grey = [(g, r) for g, r in rows if r["val_psnr"] > r["val_grey_psnr"]]
    if not beat_grey:
        return max(rows, key=lambda gr: gr[1]["val_psnr"])[0]
    colourful = [g for g, r in beat_grey if r["val_colorfulness"] >= target * r["val_colorfulness_gt"]]
    return colourful[0] if colourful else beat_grey[-1][0]


def set_gain(models, model_args: dict, gain: float, hinted_share: float = None) -> None:
    """Give `models` (copies of one model) and their checkpoint args the chroma gain `gain`. The gain rule
    sets automatic mode; a hint model keeps its hinted mix (gain x hinted_share stays what it was) unless
    `hinted_share` is given."""
    old_gain, share = models[0].chroma_gain, getattr(models[0], "hinted_share", None)
    if share is not None and (hinted_share is not None or gain != old_gain):
        share = round(hinted_share if hinted_share is not None else share * old_gain / gain, 6)
        model_args["hinted_share"] = share
    for m in models:
        m.chroma_gain = gain
        if share is not None:
            m.hinted_share = share
    model_args["chroma_gain"] = gain


def compute_loss(name: str, net: distributed.Replicated, rgb: torch.Tensor, rebalance: float = 1.0,
                 saturation: float = 1.0, precision: str = "fp32", hint_rng=None, bin_weights=None,
                 hinted_weight: float = 0.0) -> torch.Tensor:
    """The network runs under `precision` (train.loop.autocast); targets and the loss stay fp32.
    `hint_rng` (hint models): random truth hints per image (train/colorize_hints.sample_hints).
    `hinted_weight` (classify): plus that times train.colorize_losses.hinted_output_loss."""
    grey = grey_from_rgb(rgb)
    ab_true = rgb_to_lab(rgb)[:, 1:] if name in ("chroma", "classify") else None
    hints = sample_hints(ab_true, hint_rng) if hint_rng is not None else ()
    with autocast(precision, rgb.device):
        if name == "classify":
            pred = net.call("logits_or_ab", grey, *hints)
        else:
            pred = net.call("predict_ab", grey, *hints) if name == "chroma" else net(grey)
    if name == "classify":
        loss = bin_classification_loss(pred.float(), ab_true, net.module.bins.reshape(2, -1).t(), bin_weights)
        if hinted_weight and hints:
            loss = loss + hinted_weight * hinted_output_loss(net.module, pred.float(), grey, hints, ab_true)
        return loss
    if name == "chroma":
        return chroma_loss(pred.float(), ab_true, rebalance, saturation)
    return RGB_LOSSES[name](pred.float(), rgb)


def main(argv=None) -> int:
    args = parse_args(argv)
    spec = check_args(args)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = distributed.setup(pick_device(args.device))
    precision = resolve_precision(args.precision, device)
    data_dir = args.data or data_root() / "train"
    try:
        images, names = colour_only(*(load_folders([data_dir, *args.also_data], args.data_limit) if args.also_data
                                      else load_folder(data_dir, limit=args.data_limit)))
        if not images:
            raise DataError(f"no colour images under {data_dir} (grey images cannot teach colour)")
        train_imgs, _, val_imgs, val_names = split_validation(images, names, args.val_count)
        dataset = ColourPatchDataset(train_imgs, args.patch, seed=args.seed)
    except DataError as exc:
        raise SystemExit(f"error: {exc}") from None
    val = validation_crops(val_imgs, spec.pad_multiple)

    model = spec.build().to(device)
    model_args = dict(spec.kwargs)
    if args.hinted_share is not None:
        model.hinted_share = model_args["hinted_share"] = args.hinted_share
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.99))
    ema = EMA(model, args.ema) if args.ema > 0 else None
    hint_model, init_path = spec.arch == "colorize_hint", args.init_from
    if hint_model:  # the warm start pads the stem's new hint channels with zeros (train/colorize_hints.py)
        args.init_from = None
    run_dir, state, step = open_run(args, spec.name, model, optimizer, ema, device)
    args.init_from = init_path
    if hint_model and init_path and state is None:
        print(f"initialised {warm_start(model, init_path)} tensors from {init_path}", file=sys.stderr)
        if ema:
            ema.model.load_state_dict(model.state_dict())
    hint_rng = np.random.default_rng([args.seed, step]) if hint_model else None
    bin_weights = bin_weights_from(train_imgs, seed=args.seed) if args.loss == "classify" else None
    loader = DataLoader(dataset, batch_size=distributed.local_batch(args.batch_size),
                        sampler=distributed.ShardedCountingSampler(step, args.batch_size), num_workers=0)
    net = distributed.Replicated(model, device)
    meta = {"model": spec.name, "task": spec.task, "scale": 1, "loss": args.loss,
            "data": {"train_dir": str(data_dir), "train_images": len(train_imgs), "val_images": val_names,
                     "grey_input": "L/100 of CIE Lab (D65)", "patch": args.patch, "batch_size": args.batch_size},
            **run_description(args, device)}
    run = RunRecorder(run_dir, ["step", "loss", "lr", "val_psnr", "val_grey_psnr", "val_colorfulness",
                                "val_colorfulness_gt"] + (["val_psnr_hints"] if hint_model else []),
                      model=model, optimizer=optimizer, ema=ema, arch=spec.arch,
                      model_args=model_args, meta=meta, state=state, step=step, budget_s=args.time_budget)
    clock = run.clock
    batches = iter(loader)

    def train_step(step: int) -> dict:
        for group in optimizer.param_groups:
            group["lr"] = scheduled_lr(args, step, clock)
        loss = compute_loss(args.loss, net, next(batches).to(device), args.rebalance, args.saturation,
                            precision, hint_rng, bin_weights, args.hinted_weight)
        optimizer_step(model, optimizer, loss, ema, step)
        return {"loss": loss, "lr": optimizer.param_groups[0]["lr"]}

    step = train_loop(run, args, step, name=spec.name, train_step=train_step, training=[model],
                      validate=lambda m: validate(m, val, device, VAL_HINTS if hint_model else 0),
                      describe=lambda row, s: f"loss {row['loss']:.4f} val PSNR {s['val_psnr']:.3f} dB (grey "
                      f"{s['val_grey_psnr']:.3f}) colourfulness {s['val_colorfulness']:.1f} / "
                      f"{s['val_colorfulness_gt']:.1f}" + (f" {VAL_HINTS} hints {s['val_psnr_hints']:.3f} dB"
                                                           if "val_psnr_hints" in s else ""))
    final = run.eval_model()
    if args.calibrate_gain and val and distributed.is_main():
        gain = calibrate_gain(final, val, device, target=args.colour_target)
        set_gain((final, model), model_args, gain)
        run.scores = validate(final, val, device, VAL_HINTS if hint_model else 0)
        print(f"chroma gain {gain:.2f}", file=sys.stderr)
    run.finish(step, args.iters, spec.weights_path, args.publish)
    return 0


if __name__ == "__main__":
    sys.exit(main())
