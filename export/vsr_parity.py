"""Clip parity of a video SR step export: ONNX Runtime streams a 10-frame clip one step at a time,
feeding each step's hidden output back in, against the PyTorch model run over the whole clip.

Random-input parity (export/parity.py) checks one step; errors that grow through the recurrence (a
hidden state drifting frame after frame) only show over a clip, so the export check runs this too.
The clip moves smoothly (a random image panned by a sub-pixel-to-2-pixel step per frame) so the flow
and the warps carry real work, and frame 6 starts a new "shot" to cover the restart path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from models.io import HIDDEN, HIDDEN_OUT, LR, PREV_LR, SR

from .parity import ort_session, raise_if_over

CLIP_FRAMES = 10
CUT_AT = 6


def moving_clip(frames: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(1,T,3,H,W) in [0,1]: a smooth random texture panned a little each frame; a new texture from CUT_AT."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for shot in range(2):
        base = F.interpolate(torch.rand(1, 3, h // 4 + 8, w // 4 + 8, generator=gen), size=(h + 16, w + 16),
                             mode="bicubic", align_corners=False).clamp(0, 1)
        for t in range(frames):
            dy, dx = (int(round(1.5 * t * f)) % 16 for f in (0.7, 1.0))
            out.append(base[:, :, dy: dy + h, dx: dx + w])
        if shot == 0:
            out = out[:CUT_AT]
    return torch.stack(out[:frames], 1)


def check_clip_parity(onnx_path: Path, model, sizes: Sequence[Tuple[int, int]] = ((32, 48), (37, 53)),
                      frames: int = CLIP_FRAMES, atol: float = 1e-4) -> Dict[str, float]:
    """Max abs error over every frame of the clip, per 'TxHxW' case; raises ParityError above atol."""
    session = ort_session(onnx_path)
    errors: Dict[str, float] = {}
    for i, (h, w) in enumerate(sizes):
        clip = moving_clip(frames, h, w, seed=i)
        restart = [t == 0 or t == CUT_AT for t in range(frames)]
        with torch.inference_mode():
            want = model.eval()(clip, restart=restart).numpy()[0]
        worst, prev, hidden = 0.0, None, None
        for t in range(frames):
            lr = clip[:, t].numpy()
            if restart[t]:
                prev, hidden = lr, np.zeros((1, model.hidden_channels, h, w), np.float32)
            sr, hidden = session.run([SR, HIDDEN_OUT], {LR: lr, PREV_LR: prev, HIDDEN: hidden})
            prev = lr
            worst = max(worst, float(np.abs(sr[0] - want[t]).max()))
        errors[f"clip{frames}x{h}x{w}"] = worst
    return raise_if_over(errors, atol, Path(onnx_path).name)
