"""Crops of multi-frame fusion against per-frame SR on Vimeo7, to look at (ghosting, detail):

    python scripts/vsr_fusion_crops.py [--model flashsr_x4] [--out docs/vsr_fusion_crops.jpg]

Rows: the clips where the fusion gains least, the median, and most (centre frame Y-PSNR); each row a
128-px crop where the two outputs differ most, x2 nearest: LR (nearest) | per-frame | MODEL+fusion | truth.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.metrics import psnr_y  # noqa: E402
from common.resize import bicubic_downscale, mod_crop  # noqa: E402
from evaluate.vsr import clip_upscaler, load_clips  # noqa: E402

SIDE = 128


def crop_at_largest_difference(a: np.ndarray, b: np.ndarray) -> tuple:
    """(y, x) of the SIDE-px window where a and b differ most (blurred), inside the frame."""
    diff = cv2.GaussianBlur(np.abs(b - a).mean(-1), (31, 31), 0)
    h, w = diff.shape
    inner = diff[SIDE // 2: h - SIDE // 2, SIDE // 2: w - SIDE // 2]
    y, x = np.unravel_index(np.argmax(inner), inner.shape)
    return int(y), int(x)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="flashsr_x4")
    p.add_argument("--out", type=Path, default=Path("docs/vsr_fusion_crops.jpg"))
    args = p.parse_args(argv)
    scale = int(args.model.rsplit("x", 1)[1])
    per_frame = clip_upscaler(args.model, scale, None, "cpu")
    fused = clip_upscaler(args.model + "+fusion", scale, None, "cpu")
    results = []
    for clip in load_clips("Vimeo7"):
        hr = [mod_crop(f, scale) for f in clip]
        lr = [bicubic_downscale(f, scale) for f in hr]
        c = len(hr) // 2
        a, b = per_frame(lr)[c], fused(lr)[c]
        results.append((psnr_y(b, hr[c], crop=scale) - psnr_y(a, hr[c], crop=scale), lr[c], a, b, hr[c]))
    results.sort(key=lambda r: r[0])
    rows = []
    for gain, lr, a, b, truth in (results[0], results[len(results) // 2], results[-1]):
        y, x = crop_at_largest_difference(a, b)
        up = cv2.resize(lr, (truth.shape[1], truth.shape[0]), interpolation=cv2.INTER_NEAREST)
        tiles = [cv2.resize((np.clip(im[y:y + SIDE, x:x + SIDE], 0, 1) * 255).astype(np.uint8), (2 * SIDE, 2 * SIDE),
                            interpolation=cv2.INTER_NEAREST) for im in (up, a, b, truth)]
        rows.append(np.concatenate(tiles, 1))
        print(f"row {len(rows)}: fusion {gain:+.2f} dB on this clip's centre frame")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).save(args.out, quality=90)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
