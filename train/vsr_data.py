"""Video-SR training clips: HR sequences of real motion (the clips in $STSR_DATA/video, 720p halved, so
compression noise mostly averages out) mixed with synthetic camera paths over the still training images.
The trainer makes the LR side itself (bicubic, on the batch), so items are HR only: (T,3,S,S) in [0,1]."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from common.motion import MotionConfig, make_sequence

from .data import DataError
from .interp_data import decode_clip, scene_cuts

HR_DIVISOR = 2  # 1280x720 clips -> 640x360 ground truth


def load_hr_clips(folder: Path, cache_dir: Path) -> Dict[str, dict]:
    """{clip name: {"frames": uint8 (T,H,W,3) memory-mapped, "cuts": frame indices before a cut}}."""
    paths = sorted(Path(folder).glob("*.mp4"))
    if not paths:
        raise DataError(f"no .mp4 clips in {folder}")
    clips = {}
    for p in paths:
        frames = decode_clip(p, cache_dir, scales=(HR_DIVISOR,))[HR_DIVISOR]
        clips[p.stem] = {"frames": frames, "cuts": scene_cuts(frames)}
    return clips


def video_sequence(clip: dict, rng: np.random.Generator, frames: int, size: int, max_stride: int) -> np.ndarray:
    """(T,S,S,3) float32: `frames` frames `stride` apart from one clip, no cut inside; crop, flips, reversal."""
    data, cuts = clip["frames"], clip["cuts"]
    for _ in range(20):
        stride = int(rng.integers(1, max_stride + 1))
        span = stride * (frames - 1)
        start = int(rng.integers(0, len(data) - span))
        if not any(start <= c < start + span for c in cuts):
            break
    h, w = data.shape[1:3]
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    seq = np.asarray(data[start: start + span + 1: stride, y: y + size, x: x + size], np.float32) / 255.0
    if rng.random() < 0.5:
        seq = seq[:, :, ::-1]
    if rng.random() < 0.5:
        seq = seq[:, ::-1]
    if rng.random() < 0.5:
        seq = seq[::-1]
    return seq


class ClipDataset(Dataset):
    """Item i -> HR clip tensor (T,3,S,S), seeded by (seed, i): real video with probability
    `video_fraction`, else a synthetic camera path (translation, rotation, zoom, moving patches)."""

    def __init__(self, images: Sequence[np.ndarray], clips: Dict[str, dict], *, frames: int, size: int,
                 video_fraction: float = 0.7, max_stride: int = 2, per_frame_shift: float = 6.0, seed: int = 0):
        if not images and not clips:
            raise DataError("no training images and no clips")
        self.images, self.clips = list(images), list(clips.values())
        self.frames, self.size, self.seed = frames, size, seed
        self.video_fraction = video_fraction if self.clips else 0.0
        if not self.images:
            self.video_fraction = 1.0
        span = max(1, frames - 1)
        self.cfg = MotionConfig(size=size, max_shift=per_frame_shift * span, max_rotate=1.0 * span,
                                max_zoom=0.01 * span, patch_shift=per_frame_shift * span)
        self.max_stride = max_stride

    def __len__(self) -> int:
        return 1 << 40

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, 18, index])
        if rng.random() < self.video_fraction:
            clip = self.clips[int(rng.integers(len(self.clips)))]
            seq = video_sequence(clip, rng, self.frames, self.size, self.max_stride)
        else:
            img = self.images[int(rng.integers(len(self.images)))]
            other = self.images[int(rng.integers(len(self.images)))]
            seq = np.stack(make_sequence(img, rng, self.cfg, self.frames, other))
        return torch.from_numpy(np.ascontiguousarray(seq.transpose(0, 3, 1, 2)))


def validation_clips(clip: dict, count: int = 4, frames: int = 7, size: int = 128, seed: int = 99) -> list:
    """Fixed held-out HR sequences (T,S,S,3) from one clip, consecutive frames, spread over its length."""
    rng = np.random.default_rng(seed)
    data = clip["frames"]
    h, w = data.shape[1:3]
    out = []
    for n in range(count):
        start = int((n + 0.5) * (len(data) - frames) / count)
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        out.append(np.asarray(data[start: start + frames, y: y + size, x: x + size], np.float32) / 255.0)
    return out
