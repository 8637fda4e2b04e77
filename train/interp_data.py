"""The frame-interpolation training set: endless seeded triplets from common/motion.py's synthetic motion."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from common.motion import MotionConfig, heldout_triplets, make_triplet

from .data import DataError

__all__ = ["MotionConfig", "TripletDataset", "heldout_triplets"]


class TripletDataset(Dataset):
    """Item i -> (frame0, frame_t, frame1 as 3xSxS tensors, t as 1x1x1), seeded by (seed, i).

    Also reverses time at random (frame1, frame0, 1-t), which doubles the motion variety for free.
    """

    def __init__(self, images: Sequence[np.ndarray], cfg: MotionConfig, seed: int = 0):
        if not images:
            raise DataError("no training images for the triplet generator")
        self.images, self.cfg, self.seed = list(images), cfg, seed

    def __len__(self) -> int:
        return 1 << 40

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, index])
        img = self.images[int(rng.integers(len(self.images)))]
        other = self.images[int(rng.integers(len(self.images)))]
        f0, ft, f1, t = make_triplet(img, rng, self.cfg, other)
        if rng.random() < 0.5:
            f0, f1, t = f1, f0, 1.0 - t
        tens = [torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1))) for f in (f0, ft, f1)]
        return tens[0], tens[1], tens[2], torch.full((1, 1, 1), float(t))
