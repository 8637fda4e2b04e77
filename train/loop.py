"""Pieces every training script shares: device choice, EMA, LR schedule, metrics CSV, run state.

A run directory holds `model.safetensors` + `model.json` (the EMA weights, a normal checkpoint)
and `state.pt` (optimizer, schedule, raw weights, iteration) so any run resumes exactly.
"""
from __future__ import annotations

import argparse
import copy
import csv
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

import torch
from torch import nn
from tqdm import tqdm

from models import resolve_name
from models.checkpoint import CheckpointError, read_weights, save_checkpoint

from . import distributed


def spec_for_task_or_exit(task: str, name: str, scale: Optional[int] = None):
    """The registered model `name` (or family + scale), which must be a `task` model; else exit with a message."""
    try:
        spec = resolve_name(name, scale)
    except (KeyError, ValueError) as exc:
        raise SystemExit(f"error: {exc.args[0]}") from None
    if spec.task != task:
        raise SystemExit(f"error: '{spec.name}' is a {spec.task} model; train it with train.{spec.task}")
    return spec


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


PRECISIONS = ("auto", "fp32", "bf16")


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively here: CUDA with bf16, or a CPU whose oneDNN has bf16
    kernels (AVX512-BF16 / AMX). Elsewhere bf16 is emulated and slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(name: str, device: torch.device) -> str:
    """--precision -> 'fp32' or 'bf16'. 'auto' picks bf16 where it is native (measured on a Zen 4 CPU:
    a FlashSR x4 step 2x faster); an explicit 'bf16' the hardware lacks exits with a message."""
    if name not in PRECISIONS:
        raise SystemExit(f"error: --precision must be one of {', '.join(PRECISIONS)}, not '{name}'")
    if name == "fp32":
        return "fp32"
    native = bf16_supported(device)
    if name == "bf16" and not native:
        raise SystemExit(f"error: --precision bf16: this {device.type} has no native bf16 support; use fp32 or auto")
    return "bf16" if native else "fp32"


def autocast(precision: str, device: torch.device):
    """The forward-pass context of a training step: bf16 autocast or nothing. Weights, optimizer state
    and the loss stay fp32 (callers take `.float()` of the prediction); validation runs outside it."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def default_workers(device: torch.device) -> int:
    cores = os.cpu_count() or 2
    return max(1, min(8, cores - 1)) if device.type == "cuda" else max(0, min(2, cores - 1))


def cosine_lr(step: int, progress: float, warmup: int, floor: float = 0.01) -> float:
    """Multiplier: linear warm-up over `warmup` steps, then cosine decay to `floor` of the base LR.

    `progress` in [0, 1] is the run's completed fraction: by steps, or by time under a time
    budget, so a chunk that must end at a deadline still anneals fully before it.
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, max(0.0, progress))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class EMA:
    """Exponential moving average of the weights: a cheap, reliable PSNR gain for short runs."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for ema_v, v in zip(self.model.state_dict().values(), model.state_dict().values()):
            if ema_v.dtype.is_floating_point:
                ema_v.mul_(decay).add_(v.detach(), alpha=1 - decay)
            else:
                ema_v.copy_(v)


def optimizer_step(model: nn.Module, optimizer, loss: torch.Tensor, ema: Optional[EMA], step: int) -> None:
    """One update every training script makes: backward, clip the gradient norm to 1, step, EMA."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    if ema:
        ema.update(model, step)


class MetricsCSV:
    """Append-only CSV; the header is fixed by the first row's keys (resumes append)."""

    def __init__(self, path: Path, fields: list):
        self.path = Path(path)
        self.fields = fields
        if not self.path.exists():
            with open(self.path, "w", newline="") as fh:
                csv.DictWriter(fh, fieldnames=fields).writeheader()

    def write(self, row: Dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self.fields, extrasaction="ignore").writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def save_state(run_dir: Path, *, step: int, model: nn.Module, optimizer, ema: Optional[EMA],
               extra: Dict[str, Any]) -> None:
    state = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "ema": ema.model.state_dict() if ema else None, "extra": extra}
    tmp = Path(run_dir) / "state.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(Path(run_dir) / "state.pt")


def load_state(run_dir: Path, model: nn.Module, optimizer, ema: Optional[EMA], device) -> Optional[Dict[str, Any]]:
    path = Path(run_dir) / "state.pt"
    if not path.exists():
        return None
    state = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if ema is not None and state.get("ema") is not None:
        ema.model.load_state_dict(state["ema"])
    return state


class Stopwatch:
    """Wall-clock budget so a chunked run (e.g. a 10-minute GPU lease) checkpoints before the cut."""

    def __init__(self, budget_s: float = 0.0):
        self.start = time.perf_counter()
        self.budget = budget_s
        self.pinned: Optional[float] = None  # distributed: rank 0's time at the step's start, on every rank

    @property
    def elapsed(self) -> float:
        return self.pinned if self.pinned is not None else time.perf_counter() - self.start

    def expired(self) -> bool:
        return self.budget > 0 and self.elapsed >= self.budget


class RunRecorder:
    """The bookkeeping every training loop repeats around its steps.

    Owns the run's clock, the metrics CSV (each row gets the run's total seconds and the steps/s
    since the previous row), the console line, and the checkpoint pair: `state.pt` to resume and
    the EMA weights (the raw ones without EMA) as `model.safetensors` with a sidecar holding
    `meta`, the iterations, the training seconds and the latest validation scores. `on_save(step)`
    lets a script save more (train.gan: the discriminator) and returns extra entries for state.pt.
    Under torchrun only rank 0 writes: `record` and `save` do nothing on the other ranks.
    """

    def __init__(self, run_dir: Path, fields: list, *, model: nn.Module, optimizer, ema: Optional[EMA],
                 arch: str, model_args: Dict[str, Any], meta: Dict[str, Any], state: Optional[Dict[str, Any]],
                 step: int, budget_s: float, on_save: Optional[Callable[[int], Dict[str, Any]]] = None):
        self.run_dir = Path(run_dir)
        self.log = MetricsCSV(self.run_dir / "metrics.csv", [*fields, "seconds", "steps_per_s"]) \
            if distributed.is_main() else None
        self.model, self.optimizer, self.ema = model, optimizer, ema
        self.arch, self.model_args, self.meta, self.on_save = arch, model_args, meta, on_save
        resumed = state["extra"] if state else {}
        self.prior_seconds = resumed.get("seconds", 0.0)
        self.scores: Dict[str, float] = dict(resumed.get("val", {}))
        self.clock = Stopwatch(budget_s)
        self._last = (time.perf_counter(), step)

    @property
    def seconds(self) -> float:
        """Training seconds over every chunk of the run."""
        return self.prior_seconds + self.clock.elapsed

    @property
    def weights(self) -> nn.Module:
        """The weights the run publishes: the EMA copy when there is one."""
        return self.ema.model if self.ema else self.model

    def eval_model(self) -> nn.Module:
        """The model to validate, in eval mode (callers put `model` back in train mode after)."""
        return self.ema.model if self.ema else self.model.eval()

    def record(self, step: int, row: Dict[str, Any], scores: Optional[Dict[str, float]] = None,
               message: str = "") -> None:
        """Append a CSV row (plus `scores`, which the next checkpoint's sidecar keeps) and print `message`."""
        if not self.log:
            return
        if scores is not None:
            self.scores = dict(scores)
        now = time.perf_counter()
        t_last, s_last = self._last
        self.log.write({"step": step, **row, **(scores or {}), "seconds": self.seconds,
                        "steps_per_s": (step - s_last) / max(now - t_last, 1e-9)})
        self._last = (now, step)
        if message:
            print(f"step {step}: {message}", file=sys.stderr, flush=True)

    def save(self, step: int) -> None:
        if not distributed.is_main():
            return
        extra = self.on_save(step) if self.on_save else {}
        save_state(self.run_dir, step=step, model=self.model, optimizer=self.optimizer, ema=self.ema,
                   extra={"seconds": self.seconds, "val": self.scores, **extra})
        info = {**self.meta, "iterations": step, "train_seconds": round(self.seconds, 1),
                **{k: round(v, 3) for k, v in self.scores.items()}}
        save_checkpoint(self.run_dir / "model.safetensors", self.weights, arch=self.arch, args=self.model_args,
                        meta=info)

    def finish(self, step: int, iters: int, weights_path: Path, publish: bool) -> None:
        """Last checkpoint, then finish_run (say if the budget cut the run, publish if asked); under
        torchrun, rank 0 alone, then every rank checks that the weights are the same and leaves the group."""
        if distributed.is_main():
            self.save(step)
            finish_run(self.run_dir, weights_path, step=step, iters=iters, clock=self.clock, publish=publish)
        distributed.check_replicas(self.model)
        distributed.shutdown()


def _floats(row: Dict[str, Any]) -> Dict[str, Any]:
    return {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in row.items()}


def train_loop(run: RunRecorder, args: argparse.Namespace, step: int, *, name: str,
               train_step: Callable[[int], Dict[str, Any]], validate: Callable[[nn.Module], Dict[str, float]],
               describe: Callable[[Dict[str, Any], Dict[str, float]], str], training: Sequence[nn.Module],
               record_every: int = 0) -> int:
    """The skeleton of every trainer: step, then validate -> record -> save on schedule; returns the last step.

    `train_step(step)` makes one optimizer step and returns the metrics row (tensors are read only when
    recorded, so the GPU is not synchronised every step). Every --val-every steps and at --iters the
    EMA weights are validated and the row, the scores and `describe(row, scores)` recorded; with
    `record_every` the row is also logged between validations. Every --save-every steps the run is
    checkpointed. Stops at --iters or the time budget; the caller then calls run.finish.
    Under torchrun, rows are averaged over the ranks, rank 0 alone validates and writes, and with a
    time budget every rank follows rank 0's clock (the same LR schedule and the same last step).
    """
    for module in training:
        module.train()
    bar = tqdm(total=args.iters, initial=step, desc=name, dynamic_ncols=True,
               disable=None if distributed.is_main() else True)
    synced_clock = distributed.world_size() > 1 and run.clock.budget > 0
    while step < args.iters:
        if synced_clock:
            run.clock.pinned = None
            run.clock.pinned = distributed.main_value(run.clock.elapsed)
        if run.clock.expired():
            break
        row = train_step(step)
        step += 1
        bar.update(1)
        if step % args.val_every == 0 or step == args.iters:
            row = distributed.mean_row(_floats(row))
            if distributed.is_main():
                scores = validate(run.eval_model())
                for module in training:
                    module.train()
                run.record(step, row, scores, describe(row, scores))
                bar.set_postfix_str(describe(row, scores), refresh=False)
        elif record_every and step % record_every == 0:
            run.record(step, distributed.mean_row(_floats(row)))
        if step % args.save_every == 0:
            run.save(step)
    bar.close()
    return step


def add_run_arguments(p: argparse.ArgumentParser, *, val_every: int, threads_default: int = 0) -> None:
    """The flags every training script shares: run folder, resume, time budget, publish, device."""
    p.add_argument("--data", type=Path, default=None, help="image folder (default $STSR_DATA/train)")
    p.add_argument("--data-limit", type=int, default=0, help="use only the first N images (tests)")
    p.add_argument("--val-every", type=int, default=val_every)
    p.add_argument("--save-every", type=int, default=val_every)
    p.add_argument("--run-dir", type=Path, default=None, help="default runs/NAME")
    p.add_argument("--fresh", action="store_true", help="ignore an existing run state instead of resuming")
    p.add_argument("--time-budget", type=float, default=0.0, help="stop (with a checkpoint) after N seconds")
    p.add_argument("--schedule", choices=["steps", "time"], default="steps",
                   help="'time': the cosine ends at --time-budget (for fixed-length GPU chunks)")
    p.add_argument("--publish", action="store_true", help="copy the final EMA weights to weights/")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=threads_default, help="torch CPU threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="training forward pass: bf16 autocast where native (auto), or fp32; validation is fp32")


def finish_run(run_dir: Path, weights_path: Path, *, step: int, iters: int, clock: Stopwatch, publish: bool) -> None:
    """Say whether the time budget cut the run short, and publish the EMA weights if asked."""
    if clock.expired() and step < iters:
        print(f"time budget reached at step {step}/{iters}; resume with the same command", file=sys.stderr)
    if publish:
        weights_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(run_dir) / "model.safetensors", weights_path)
        shutil.copy(Path(run_dir) / "model.json", weights_path.with_suffix(".json"))
        print(f"published {weights_path}", file=sys.stderr)


def grown_tensor(old: torch.Tensor, new: torch.Tensor) -> Optional[torch.Tensor]:
    """`new` (a wider layer's fresh init) with `old` in its leading slice and the old outputs' weights on
    added inputs zeroed (Net2Net-style growth: the wider net starts as the old one, its added channels
    keep their random init and learn at once); None when `old` does not fit."""
    if old.dim() != new.dim() or any(o > n for o, n in zip(old.shape, new.shape)):
        return None
    grown = new.detach().clone()
    if old.dim() >= 2:
        grown[: old.shape[0], old.shape[1]:] = 0
    grown[tuple(slice(0, s) for s in old.shape)] = old
    return grown


def init_from(model: nn.Module, path: Path, grow: bool = False) -> int:
    """Copy tensors whose name and shape match (an x2 body into x4); `grow`: also narrower ones (grown_tensor)."""
    try:
        state = read_weights(path)
    except CheckpointError as exc:
        raise SystemExit(f"error: --init-from: {exc}") from None
    own = model.state_dict()
    taken = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if grow:
        grown = {k: grown_tensor(v, own[k]) for k, v in state.items() if k in own and k not in taken}
        taken.update({k: v for k, v in grown.items() if v is not None})
    if not taken:
        raise SystemExit(f"error: --init-from {path}: no tensor matches this model")
    own.update(taken)
    model.load_state_dict(own)
    return len(taken)


def open_run(args: argparse.Namespace, name: str, model: nn.Module, optimizer, ema: Optional[EMA], device):
    """Run folder (runs/NAME unless --run-dir), emptied by --fresh; resumes its state if there is one,
    else applies --init-from when the script has it. Returns (run_dir, state or None, step)."""
    run_dir = args.run_dir or Path("runs") / name
    if distributed.is_main():
        if args.fresh and run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    distributed.barrier()  # every rank loads the state rank 0 kept (any earlier process count)
    state = load_state(run_dir, model, optimizer, ema, device)
    say = print if distributed.is_main() else (lambda *a, **k: None)
    if state:
        say(f"resuming {run_dir} at step {state['step']}", file=sys.stderr)
    elif getattr(args, "init_from", None):
        say(f"initialised {init_from(model, args.init_from, getattr(args, 'grow', False))} tensors from "
            f"{args.init_from}", file=sys.stderr)
        if ema:
            ema.model.load_state_dict(model.state_dict())
    return run_dir, state, state["step"] if state else 0


def run_progress(args: argparse.Namespace, step: int, clock: Stopwatch, warmup: int = 0) -> float:
    """How far the run is, in [0, 1]: by steps after `warmup` or (with --schedule time and a
    --time-budget) by wall-clock, whichever is further along."""
    by_steps = (step - warmup) / max(1, args.iters - warmup)
    by_time = clock.elapsed / args.time_budget if args.time_budget > 0 and args.schedule == "time" else 0.0
    return min(1.0, max(by_steps, by_time, 0.0))


def scheduled_lr(args: argparse.Namespace, step: int, clock: Stopwatch) -> float:
    """The learning rate at `step`: warm-up then cosine over the run's progress (run_progress)."""
    return args.lr * cosine_lr(step, run_progress(args, step, clock, args.warmup), args.warmup)


def run_description(args: argparse.Namespace, device: torch.device) -> Dict[str, Any]:
    """Sidecar fields every script records: the full command-line arguments and the device."""
    return {"training": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "processes": distributed.world_size(),  # torchrun's N; --batch-size is the global batch
            "precision": resolve_precision(getattr(args, "precision", "fp32"), device)}
