"""What training the hint colorizer adds to train/colorize.py: random hints drawn from the truth,
several data folders, the rebalancing prior of the classification loss, and the warm start.

Hints follow Zhang et al. 2017: a random number of square patches (often none, so automatic mode
keeps being trained), side 1..9 px, each carrying the mean true ab of its patch, at random places.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
import torch

from models.colorize_hint import ColorizeHint, ab_bins, warm_start_from_lab
from models.colorize_lab import AB_RANGE
from models.lab_color import rgb_to_lab

from .colorize_losses import rebalance_weights
from .data import load_folder

P_NO_HINTS = 0.4  # share of training images with no hint at all (automatic mode)
MAX_HINTS = 24
PATCH_SIDES = (1, 3, 5, 7, 9)


def sample_hints(ab: torch.Tensor, rng: np.random.Generator, p_none: float = P_NO_HINTS,
                 max_hints: int = MAX_HINTS) -> Tuple[torch.Tensor, torch.Tensor]:
    """(N,2,H,W) true ab (Lab units) -> (hint_ab / AB_RANGE, hint_mask), random hints per image."""
    n, _, h, w = ab.shape
    hint_ab, mask = torch.zeros_like(ab), torch.zeros(n, 1, h, w, dtype=ab.dtype, device=ab.device)
    for i in range(n):
        count = 0 if rng.random() < p_none else int(min(max_hints, rng.geometric(1 / 8)))
        for _ in range(count):
            side = int(rng.choice(PATCH_SIDES))
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            colour = ab[i, :, y:y + side, x:x + side].mean(dim=(1, 2))
            hint_ab[i, :, y:y + side, x:x + side] = (colour / AB_RANGE)[:, None, None]
            mask[i, :, y:y + side, x:x + side] = 1.0
    return hint_ab, mask


def load_folders(folders: Sequence[Path], limit: int = 0) -> Tuple[List[np.ndarray], List[str]]:
    """Images of several folders, names prefixed by their folder's name (the sidecar's val list)."""
    images, names = [], []
    for folder in folders:
        imgs, found = load_folder(folder, limit=limit)
        images += imgs
        names += [f"{Path(folder).name}/{n}" for n in found]
    return images, names


def bin_weights_from(images: Sequence[np.ndarray], count: int = 400, seed: int = 0) -> torch.Tensor:
    """Class-rebalancing weights of the ab bins, from every 8th pixel of up to `count` training images."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(images), size=min(count, len(images)), replace=False)
    samples = []
    for i in picks:
        rgb = torch.from_numpy(np.ascontiguousarray(images[i][::8, ::8].transpose(2, 0, 1)))[None].float()
        samples.append(rgb_to_lab(rgb)[0, 1:].reshape(2, -1).t())
    return rebalance_weights(torch.cat(samples), ab_bins())


def warm_start(model: torch.nn.Module, path: Path) -> int:
    """--init-from for the hint model: a ColorizeLab checkpoint fills every tensor whose shape allows."""
    from models.checkpoint import read_weights

    if not isinstance(model, ColorizeHint):
        raise SystemExit("error: the hint warm start applies to colorize_hint models only")
    taken = warm_start_from_lab(model, read_weights(path))
    if not taken:
        raise SystemExit(f"error: --init-from {path}: no tensor matches this model")
    return taken
