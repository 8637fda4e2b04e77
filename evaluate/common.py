"""What every evaluation task shares: picking models, loading sets, running a model, reporting rows."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from common.images import DecodedImage, ImageLoadError, hwc_to_nchw, list_images, nchw_to_hwc, read_image
from common.paths import benchmark_dir
from models import REGISTRY, get_spec, load_model
from models.checkpoint import CheckpointError, record_metrics
from models.io import DEFAULT_VIVIDNESS
from models.registry import SCALAR_DEFAULTS, positional_module

Runner = Callable[..., np.ndarray]


def select_models(model_arg: str, task: str, baseline: str, baseline_first: bool = False) -> List[str]:
    """Names from `--model` (a comma list, or 'all': every trained `task` model plus the baseline)."""
    names = [n.strip() for n in model_arg.split(",") if n.strip()]
    if names == ["all"]:
        untrained = [s.name for s in REGISTRY.values() if s.task == task and not s.has_weights()]
        if untrained:
            print(f"warning: no weights yet, skipped: {', '.join(untrained)}", file=sys.stderr)
        trained = [s.name for s in REGISTRY.values() if s.task == task and s.has_weights()]
        return [baseline] + trained if baseline_first else trained + [baseline]
    for name in names:
        if name == baseline:
            continue
        try:
            spec = get_spec(name)
        except KeyError as exc:
            raise SystemExit(f"error: {exc.args[0]}") from None
        if spec.task != task:
            raise SystemExit(f"error: '{name}' is a {spec.task} model, not {task}")
    return names


def read_set(name: str, limit: int = 0) -> List[Tuple[str, DecodedImage]]:
    """(file name, decoded image) of a benchmark folder; unreadable files are named on stderr and skipped."""
    folder = benchmark_dir(name)
    if not folder.is_dir():
        raise SystemExit(f"error: benchmark set '{name}' not found at {folder} (set STSR_DATA)")
    images = []
    for path in list_images(folder)[: limit or None]:
        try:
            images.append((path.name, read_image(path)))
        except ImageLoadError as exc:
            print(f"warning: skipping {exc}", file=sys.stderr)
    if not images:
        raise SystemExit(f"error: no readable images in {folder}")
    return images


def load_set(name: str, limit: int = 0) -> List[Tuple[str, np.ndarray]]:
    """(file name, RGB HxWx3 float) of a benchmark folder."""
    return [(file, decoded.rgb) for file, decoded in read_set(name, limit)]


def model_runner(name: str, weights: Optional[Path] = None, device: str = "cpu") -> Runner:
    """f(*images HxWxC float, **scalars) -> HxWxC float in [0, 1]: the one way evaluation runs a model.

    Inputs go in the model's contract order (models/io.py): images reflect-padded to its pad multiple
    (the output is cropped back), per-image scalars (e.g. t) filled to their tensor's shape; a scalar with a
    default (models.registry.SCALAR_DEFAULTS: strength, vividness) may be left out.
    """
    spec = get_spec(name)
    io = spec.io
    try:
        model = positional_module(spec, load_model(name, weights)).to(device)  # inputs in contract order
    except CheckpointError as exc:
        raise SystemExit(f"error: {exc}") from None
    m = io.pad_multiple

    @torch.inference_mode()
    def run(*images: np.ndarray, **scalars: float) -> np.ndarray:
        h, w = images[0].shape[:2]
        pending = iter(images)
        feeds = []
        for t in io.inputs:
            if t.is_image:
                x = hwc_to_nchw(next(pending))
                feeds.append(F.pad(x, (0, (-w) % m, 0, (-h) % m), mode="reflect") if m > 1 else x)
            else:
                value = scalars[t.name] if t.name in scalars else SCALAR_DEFAULTS[t.name]  # e.g. t has none
                feeds.append(torch.full(t.concrete_shape(1, h, w), float(value)))
        out = model(*(f.to(device) for f in feeds)).clamp_(0, 1)
        return nchw_to_hwc(out[..., : h * spec.scale, : w * spec.scale])

    return run


def run_jobs(jobs: Iterable, evaluate_one: Callable[[object], List[dict]], args, *, baselines: Sequence[str],
             metrics: Sequence[str], line: Callable[[dict], str], always_log: bool = False) -> List[dict]:
    """Evaluate each job (a model name, or (name, scale)); log a line per row, store metrics if asked."""
    rows = []
    for job in jobs:
        name = job[0] if isinstance(job, tuple) else job
        result = evaluate_one(job)
        rows += result
        # baselines and serving modes without weights of their own ('flashsr_x4+fusion') keep no sidecar
        if args.update_sidecar and name not in baselines and name in REGISTRY and not getattr(args, "precision", None):
            # the shipped settings only: the hint curve's and the vividness rows stay out of the sidecar
            automatic = [r for r in result if not r.get("hints") and r.get("vividness") in (None, DEFAULT_VIVIDNESS)]
            record_metrics(args.weights or get_spec(name).weights_path, automatic, tuple(metrics))
        if always_log or not args.json:
            for r in result:
                print(line(r), file=sys.stderr, flush=True)
    return rows


def by_model_and_set(rows: List[dict], key: Sequence[str] = ("model",)) -> Dict[tuple, Dict[str, dict]]:
    """{(model, ...): {set: row}} in first-seen order."""
    keyed: Dict[tuple, Dict[str, dict]] = {}
    for r in rows:
        keyed.setdefault(tuple(r[k] for k in key), {})[r["set"]] = r
    return keyed


def markdown_table(head: Sequence[str], body: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])


def mean(values, digits: int) -> float:
    return round(float(np.mean(values)), digits)


def print_json(rows: List[dict]) -> None:
    print(json.dumps(rows, indent=1))
