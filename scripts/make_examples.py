"""Rebuild the small example files under examples/ from the shared data (run once; the files are committed).

    STSR_DATA=../shared/data python scripts/make_examples.py

The Space has no ../shared, so the app ships these few small derivatives (crops and downscales,
each under ~200 KB); examples/README.md names their sources.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.paths import PROJECT_ROOT, data_root  # noqa: E402

OUT = PROJECT_ROOT / "examples"


def bicubic(img: Image.Image, factor: float) -> Image.Image:
    return img.resize((round(img.width / factor), round(img.height / factor)), Image.BICUBIC)


def crop_center(img: Image.Image, w: int, h: int) -> Image.Image:
    left, top = (img.width - w) // 2, (img.height - h) // 2
    return img.crop((left, top, left + w, top + h))


def main() -> int:
    root = data_root()
    seq = sorted((root / "vfi" / "sequences" / "cdfi_854x480").glob("*.jpg"))
    if not seq:
        print(f"shared data not found under {root} (set STSR_DATA)", file=sys.stderr)
        return 2
    OUT.mkdir(exist_ok=True)
    # Only the sets ../shared/data/README.md names for app demos are used here (the real frame
    # sequence and RNI6); the benchmark sets are read in place and never redistributed.
    frame = Image.open(seq[30]).convert("RGB")
    # Super-resolution inputs: low-resolution crops (bicubic downscales, as the models were trained on).
    bicubic(frame.crop((330, 170, 602, 310)), 2).save(OUT / "sr_car_lr.png")
    bicubic(frame.crop((560, 0, 854, 120)), 2).save(OUT / "sr_title_lr.png")
    bicubic(frame.crop((0, 120, 400, 300)), 2).save(OUT / "sr_tents_lr.png")
    # An original-resolution crop for "downscale first and compare with the original".
    frame.crop((340, 120, 596, 376)).save(OUT / "hr_frame_crop.png")
    # Colorization: a real old grey photograph, and a colour photo (the app turns it grey first).
    grey = Image.open(root / "demo" / "RNI6" / "Old_Tom_Morris.png").convert("L")
    grey.thumbnail((320, 320), Image.BICUBIC)
    grey.save(OUT / "grey_old_tom_morris.png")
    crop_center(frame, 320, 240).save(OUT / "colour_frame.png")
    # Interpolation: two consecutive frames; and a short clip (2 s, 10 fps, VP8 WebM) for the video tab.
    for i in (10, 11):
        bicubic(Image.open(seq[i]).convert("RGB"), 2).save(OUT / f"frame_{i:05d}.jpg", quality=90)
    writer = cv2.VideoWriter(str(OUT / "clip_cdfi.webm"), cv2.VideoWriter_fourcc(*"VP80"), 10, (214, 120))
    for path in seq[:20]:
        frame = np.asarray(Image.open(path).convert("RGB").resize((214, 120), Image.BICUBIC))
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    for path in sorted(OUT.iterdir()):
        print(f"{path.name:28} {path.stat().st_size / 1024:7.1f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
