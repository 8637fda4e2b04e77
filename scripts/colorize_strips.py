"""Side-by-side strips of real old photos: old model | new model | new model with 5 hints.

    python scripts/colorize_strips.py [--old colorize_lab] [--new colorize_hint_cls] [--out docs/]
    python scripts/colorize_strips.py --vividness 1,1.5,2   # the new model at each vividness instead

Reads $STSR_DATA/demo/RNI6 and demo/old_photos (no ground truth exists for them), colours each with
both models through serve.colorize, and writes one JPEG per folder (a row per photo, each column
scaled to HEIGHT px) to docs/colorize_strips_<folder>.jpg. The 5 hints are scripted, not a user's
and not ground truth: EXAMPLE_HINTS places them by position and lightness (sky blue near the top
when bright, skin tone in the middle, foliage green and warm brown lower down), to show what a few
clicks change; the dots are drawn on the third column. With --vividness the columns are the new
model's automatic colour at each value (docs/colorize_vividness_<folder>.jpg).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEIGHT = 256
FOLDERS = ("demo/RNI6", "demo/old_photos/old", "demo/old_photos/old_w_scratch")
SKY, SKIN, FOLIAGE, BROWN, RED = "#6f9fd8", "#d9a07f", "#5d8a3c", "#8a5a3a", "#b03030"


def example_hints(grey: np.ndarray) -> list:
    """Five scripted hints (x, y, colour) for a grey photo, chosen from position and lightness."""
    h, w = grey.shape
    spots = [(0.5, 0.08), (0.5, 0.42), (0.3, 0.55), (0.2, 0.88), (0.8, 0.88)]
    hints = []
    for i, (fx, fy) in enumerate(spots):
        x, y = int(fx * (w - 1)), int(fy * (h - 1))
        light = float(grey[max(0, y - 3):y + 4, max(0, x - 3):x + 4].mean())
        if i == 0:
            colour = SKY if light > 0.6 else BROWN
        elif i in (1, 2):
            colour = SKIN if 0.35 < light < 0.85 else (RED if light <= 0.35 else SKY)
        else:
            colour = FOLIAGE if light < 0.55 else BROWN
        hints.append((x, y, colour))
    return hints


def _column(rgb: np.ndarray, label: str, hints=()) -> np.ndarray:
    from serve.colorize_hints import parse_colour

    scale = HEIGHT / rgb.shape[0]
    img = cv2.resize((np.clip(rgb, 0, 1) * 255).astype(np.uint8), (round(rgb.shape[1] * scale), HEIGHT),
                     interpolation=cv2.INTER_AREA)
    for x, y, colour in hints:
        centre = (int(x * scale), int(y * scale))
        cv2.circle(img, centre, 6, (255, 255, 255), -1)
        cv2.circle(img, centre, 4, tuple(int(c * 255) for c in parse_colour(colour)), -1)
    cv2.putText(img, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def strip(folder: Path, old: str, new: str, vividness=()) -> np.ndarray:
    from common.images import read_image
    from serve.colorize import colorize, lightness

    rows = []
    for path in sorted(folder.glob("*.png")):
        decoded = read_image(path)
        if vividness:
            cols = [_column(colorize(decoded, new, "torch", vividness=v).image[..., :3], f"vividness {v:g}")
                    for v in vividness]
        else:
            hints = example_hints(lightness(decoded.rgb))
            cols = [_column(colorize(decoded, old, "torch").image[..., :3], old),
                    _column(colorize(decoded, new, "torch").image[..., :3], new),
                    _column(colorize(decoded, new, "torch", hints=hints).image[..., :3], new + " + 5 hints", hints)]
        rows.append(np.concatenate(cols, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(rows, axis=0)


def main(argv=None) -> int:
    from common.paths import data_root

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old", default="colorize_lab")
    p.add_argument("--new", default="colorize_hint_cls")
    p.add_argument("--out", type=Path, default=ROOT / "docs")
    p.add_argument("--vividness", default="", help="comma list, e.g. 1,1.5,2: one column per value of --new "
                   "instead (--old is not used then)")
    args = p.parse_args(argv)
    from serve.colorize import check_vividness

    try:
        vividness = [check_vividness(float(v)) for v in args.vividness.split(",") if v.strip()]
    except ValueError as exc:  # InputError is a ValueError
        p.error(f"--vividness: {exc}")
    for sub in FOLDERS:
        image = strip(data_root() / sub, args.old, args.new, vividness)
        out = args.out / f"colorize_{'vividness' if vividness else 'strips'}_{sub.split('/')[-1]}.jpg"
        cv2.imwrite(str(out), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
