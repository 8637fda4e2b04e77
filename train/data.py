"""Training data for SR: HR images from disk, random crops, flips/rotations, degradation on the fly.

Images are decoded once into memory (the shared training set is ~600 images); bad files are
skipped with a warning naming the file so a long run never dies halfway on one corrupt image.
"""
from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from common.degradations import degrade_preset, degrade_real
from common.images import ImageLoadError, list_images, read_image
from common.resize import bicubic_downscale


class DataError(RuntimeError):
    """The training data cannot be used (missing folder, nothing readable, images too small)."""


# ---------------------------------------------------------------- degradations (HR uint8 -> LR float)

def degrade_bicubic(hr: np.ndarray, scale: int, rng: np.random.Generator) -> np.ndarray:
    """The benchmark degradation: PIL bicubic with antialiasing, 8-bit."""
    return bicubic_downscale(hr, scale)


def degrade_pixelate_noise(hr: np.ndarray, scale: int, rng: np.random.Generator,
                           noise_range: Tuple[float, float] = (0.0, 10.0 / 255)) -> np.ndarray:
    """Seed 002's degradation: pixelation (block average) plus Gaussian noise of random strength."""
    h, w, c = hr.shape
    blocks = hr[: h - h % scale, : w - w % scale].reshape(h // scale, scale, w // scale, scale, c)
    lr = blocks.mean(axis=(1, 3))
    sigma = rng.uniform(*noise_range)
    lr = lr + rng.normal(0.0, sigma, lr.shape).astype(np.float32)
    return np.clip(np.rint(lr * 255.0), 0, 255).astype(np.float32) / 255.0


def degrade_mixed(hr: np.ndarray, scale: int, rng: np.random.Generator) -> np.ndarray:
    """Half the patches seed 002's pixelation + noise, half bicubic: the up-conversion models learn
    the seed's task yet still fit the benchmark protocol (bicubic LR)."""
    return (degrade_pixelate_noise if rng.random() < 0.5 else degrade_bicubic)(hr, scale, rng)


CLEAN_FRACTION = 0.2  # real: share of plain bicubic patches (strength 0), so clean inputs stay sharp
MIN_REAL_LEVEL = 0.1  # real degradations start here: strength 0 then means clean input only


def degrade_real_with_strength(hr: np.ndarray, scale: int, rng: np.random.Generator,
                               clean_fraction: float = CLEAN_FRACTION) -> Tuple[np.ndarray, float]:
    """Real-world LR (common.degradations, two-stage) at a random level; returns (LR, strength = level).

    The level scales every range, so the strength the network is given says how much damage
    to expect: 0 is only ever given with the `clean_fraction` of bicubic patches, so at 0 the network
    keeps all detail (the clean benchmark), 1 removes heavy noise and JPEG. (With levels from 0 and a
    tenth of clean patches, flashsr_real_x2 at strength 0 lost 0.49 dB to flashsr_x2 on clean BSD100.)"""
    if rng.random() < clean_fraction:
        return degrade_bicubic(hr, scale, rng), 0.0
    level = MIN_REAL_LEVEL + (1.0 - MIN_REAL_LEVEL) * float(rng.random())
    return degrade_real(hr, scale, rng, level=level), level


DEGRADATIONS: Dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "bicubic": degrade_bicubic,
    "pixelate_noise": degrade_pixelate_noise,
    "mixed": degrade_mixed,
    "real": degrade_real_with_strength,  # returns (LR, strength): the dataset yields (LR, HR, strength)
}


# ---------------------------------------------------------------- loading

def load_folder(folder: Path, min_side: int = 1, limit: int = 0) -> Tuple[List[np.ndarray], List[str]]:
    """Decode every readable image under `folder` to float32 RGB; skip (and warn about) the rest."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data folder not found: {folder} (set STSR_DATA or pass --data)")
    paths = list_images(folder)
    if not paths:
        raise DataError(f"no image files under {folder}")
    if limit:
        paths = paths[:limit]
    images, names = [], []
    for path in paths:
        try:
            img = read_image(path, min_side=min_side)
        except ImageLoadError as exc:
            warnings.warn(f"skipping training image {exc}", stacklevel=2)
            continue
        images.append(img.rgb)
        names.append(str(path.relative_to(folder)))
    if not images:
        raise DataError(f"none of the {len(paths)} files under {folder} is a usable image of at least {min_side}px")
    return images, names


def split_validation(images: Sequence[np.ndarray], names: Sequence[str], count: int):
    """Deterministic hold-out: every k-th image (by sorted name) goes to validation."""
    if count <= 0 or len(images) < 2:
        return list(images), list(names), [], []
    step = max(1, len(images) // count)
    val_idx = set(range(step // 2, len(images), step)[:count])
    train = [(im, n) for i, (im, n) in enumerate(zip(images, names)) if i not in val_idx]
    val = [(im, n) for i, (im, n) in enumerate(zip(images, names)) if i in val_idx]
    return [t[0] for t in train], [t[1] for t in train], [v[0] for v in val], [v[1] for v in val]


# ---------------------------------------------------------------- dataset

def augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random horizontal flip and one of four 90-degree rotations (the 8 dihedral variants)."""
    if rng.random() < 0.5:
        img = img[:, ::-1]
    return np.rot90(img, k=int(rng.integers(4)))


@dataclass
class PatchConfig:
    scale: int
    lr_patch: int = 48
    degradation: str = "bicubic"
    augment: bool = True
    clean_fraction: float = CLEAN_FRACTION  # "real" only: share of clean bicubic patches (strength 0)


class SRPatchDataset(Dataset):
    """Random (LR, HR) patch pairs, one per integer index.

    Images are picked with probability proportional to sqrt(area), so large photos give more
    patches than T91's tiny ones without drowning them. Item i uses an RNG seeded with
    (seed, i) and `CountingSampler` counts i up without end, so runs are reproducible whatever
    the worker count and a resumed run continues the same stream.
    """

    def __init__(self, images: Sequence[np.ndarray], config: PatchConfig, seed: int = 0):
        if config.degradation not in DEGRADATIONS:
            raise DataError(f"unknown degradation '{config.degradation}' (choose from {', '.join(DEGRADATIONS)})")
        hr_patch = config.lr_patch * config.scale
        usable = [im for im in images if min(im.shape[:2]) >= hr_patch]
        if not usable:
            raise DataError(f"no training image is at least {hr_patch}px a side (LR patch {config.lr_patch} x scale "
                            f"{config.scale}); use a smaller --patch")
        if len(usable) < len(images):
            warnings.warn(f"{len(images) - len(usable)} images smaller than {hr_patch}px skipped", stacklevel=2)
        self.images = usable
        weights = np.array([math.sqrt(im.shape[0] * im.shape[1]) for im in usable])
        self.cum = np.cumsum(weights / weights.sum())
        self.config = config
        self.seed = seed

    def __len__(self) -> int:  # indices are unbounded; the sampler decides how many
        return 1 << 40

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, index])
        cfg = self.config
        img = self.images[min(int(np.searchsorted(self.cum, rng.random())), len(self.images) - 1)]
        hp = cfg.lr_patch * cfg.scale
        y = int(rng.integers(0, img.shape[0] - hp + 1))
        x = int(rng.integers(0, img.shape[1] - hp + 1))
        hr = img[y: y + hp, x: x + hp]
        if cfg.augment:
            hr = augment(hr, rng)
        hr = np.ascontiguousarray(hr)
        degrade = DEGRADATIONS[cfg.degradation]
        lr = (degrade(hr, cfg.scale, rng, clean_fraction=cfg.clean_fraction) if cfg.degradation == "real"
              else degrade(hr, cfg.scale, rng))
        strength = None
        if isinstance(lr, tuple):
            lr, strength = lr
        pair = (torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))),
                torch.from_numpy(hr.transpose(2, 0, 1).copy()))
        return pair if strength is None else (*pair, torch.tensor([strength], dtype=torch.float32))


class CountingSampler(Sampler):
    """Yields start, start+1, ... without end: one global patch index per sample."""

    def __init__(self, start: int = 0):
        self.start = start

    def __iter__(self):
        return itertools.count(self.start)


def validation_pairs(images: Sequence[np.ndarray], scale: int, max_side: int = 384, lr_multiple: int = 1,
                     preset: str = ""):
    """(LR, HR) pairs for validation: centre crop (keeps validation quick), mod-crop so the LR side
    is a multiple of `lr_multiple` (the model's pad_multiple), bicubic LR, or the fixed real-world
    `preset` (common.degradations, seed = image index) when given."""
    pairs, mod = [], scale * lr_multiple
    for img in images:
        h, w = img.shape[:2]
        ch, cw = min(h, max_side), min(w, max_side)
        top, left = (h - ch) // 2, (w - cw) // 2
        hr = img[top: top + ch - ch % mod, left: left + cw - cw % mod]
        if min(hr.shape[:2]) < 4 * scale:
            continue
        lr = degrade_preset(hr, scale, preset, seed=len(pairs)) if preset else bicubic_downscale(hr, scale)
        pairs.append((lr, hr))
    return pairs
