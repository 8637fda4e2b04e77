"""The frame-interpolation training set: endless seeded triplets from common/motion.py's synthetic motion,
mixed with real-motion triplets from the video clips (decoded once, cached as .npy under runs/)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from common.motion import MotionConfig, heldout_triplets, make_triplet

from .data import DataError

__all__ = ["MotionConfig", "TripletDataset", "MixedTripletDataset", "heldout_triplets", "load_clips",
           "video_validation"]


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


# --- real motion: triplets from the clips in $STSR_DATA/video (issue #20) ---------------------------------

VIDEO_SCALES = (2, 4)  # frames are cached at 1/2 and 1/4 of the clip size: real motion from small to large


def decode_clip(path: Path, cache_dir: Path, scales: Sequence[int] = VIDEO_SCALES) -> Dict[int, np.ndarray]:
    """{scale: uint8 (T,H,W,3)} for one clip, decoded once with PyAV and cached as .npy (memory-mapped)."""
    import av  # decode only here: the synthetic path needs no PyAV

    cache_dir.mkdir(parents=True, exist_ok=True)
    files = {s: cache_dir / f"{path.stem}_x{s}.npy" for s in scales}
    if not all(f.exists() for f in files.values()):
        frames: Dict[int, list] = {s: [] for s in scales}
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                rgb = frame.to_ndarray(format="rgb24")
                h, w = rgb.shape[:2]
                for s in scales:
                    frames[s].append(cv2.resize(rgb, (w // s, h // s), interpolation=cv2.INTER_AREA))
        for s in scales:  # a per-process temporary name: two runs filling one cache never share a file
            tmp = files[s].with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, np.stack(frames[s]))
            tmp.replace(files[s])
    return {s: np.load(f, mmap_mode="r") for s, f in files.items()}


def scene_cuts(frames: np.ndarray, factor: float = 4.0, floor: float = 20.0) -> np.ndarray:
    """Indices i where frame i -> i+1 changes far more than usual (mean abs difference, 8-bit): a cut."""
    diffs = np.array([np.abs(frames[i + 1].astype(np.float32) - frames[i]).mean() for i in range(len(frames) - 1)])
    return np.where(diffs > max(floor, factor * float(np.median(diffs))))[0] if len(diffs) else np.zeros(0, int)


def load_clips(folder: Path, cache_dir: Path) -> Dict[str, Dict[int, np.ndarray]]:
    clips = sorted(Path(folder).glob("*.mp4"))
    if not clips:
        raise DataError(f"no .mp4 clips in {folder}")
    out = {}
    for p in clips:
        clip = decode_clip(p, cache_dir)
        clip["cuts"] = scene_cuts(clip[max(VIDEO_SCALES)])  # triplets never span these
        out[p.stem] = clip
    return out


def video_triplet(clip: Dict[int, np.ndarray], rng: np.random.Generator, size: int, max_gap: int = 5):
    """(frame0, frame_t, frame1 float32 HxWx3, t) from frames i, i+k, i+gap of one clip.

    gap in 2..max_gap (1 to max_gap-1 frames in between), k any in-between frame (so t = k/gap is
    not only 0.5), at a random cached scale; random crop, flips and time reversal.
    """
    scale = int(rng.choice([s for s in clip if s != "cuts"]))
    frames = clip[scale]
    cuts = clip.get("cuts", ())
    for _ in range(20):  # a start whose span holds no scene cut
        gap = int(rng.integers(2, max_gap + 1))
        i = int(rng.integers(0, len(frames) - gap))
        if not any(i <= c < i + gap for c in cuts):
            break
    k = int(rng.integers(1, gap))
    h, w = frames.shape[1:3]
    side = min(size, h, w)
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    out = [np.asarray(frames[j, y: y + side, x: x + side], np.float32) / 255.0 for j in (i, i + k, i + gap)]
    t = k / gap
    if rng.random() < 0.5:
        out = [f[:, ::-1] for f in out]
    if rng.random() < 0.5:
        out = [f[::-1] for f in out]
    if rng.random() < 0.5:
        out, t = out[::-1], 1.0 - t
    return out[0], out[1], out[2], t


class MixedTripletDataset(Dataset):
    """Real-video triplets (share `video_fraction`) mixed with the synthetic ones; seeded by (seed, i)."""

    def __init__(self, clips: Dict[str, Dict[int, np.ndarray]], synthetic: TripletDataset, size: int,
                 video_fraction: float = 0.7, max_gap: int = 5, seed: int = 0):
        if not clips:
            raise DataError("no training clips")
        self.clips, self.synthetic, self.size = list(clips.values()), synthetic, size
        self.video_fraction, self.max_gap, self.seed = video_fraction, max_gap, seed

    def __len__(self) -> int:
        return 1 << 40

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, 7, index])
        if rng.random() >= self.video_fraction:
            return self.synthetic[index]
        clip = self.clips[int(rng.integers(len(self.clips)))]
        f0, ft, f1, t = video_triplet(clip, rng, self.size, self.max_gap)
        tens = [torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1))) for f in (f0, ft, f1)]
        return tens[0], tens[1], tens[2], torch.full((1, 1, 1), float(t))


def video_validation(clip: Dict[int, np.ndarray], count: int = 24, size: int = 256, seed: int = 99) -> list:
    """Fixed held-out triplets from one clip: 1/2 scale, gaps 2 and 4, the middle frame, centre-ish crops."""
    rng = np.random.default_rng(seed)
    frames = clip[2]
    cuts = clip.get("cuts", ())
    h, w = frames.shape[1:3]
    out = []
    for n in range(count):
        gap = 2 if n % 2 == 0 else 4
        i = int(rng.integers(0, len(frames) - gap))
        while any(i <= c < i + gap for c in cuts):
            i = int(rng.integers(0, len(frames) - gap))
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        f0, ft, f1 = (np.asarray(frames[j, y: y + size, x: x + size], np.float32) / 255.0
                      for j in (i, i + gap // 2, i + gap))
        out.append((f0, ft, f1, 0.5))
    return out
