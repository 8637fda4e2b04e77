"""Side-by-side SR crops for the README: one PNG per registered SR model under docs/sr_crops/.

    python scripts/make_sr_crops.py [--frame 00020.jpg] [--box 300,150,96,72]

Each strip is: bicubic | the model | (for a GAN model) its PSNR-trained generator | the original.
The source is a real video frame from the CDFI sequence (the data README's demo set; benchmark
images are not redistributed): the frame is bicubic-downscaled by the model's scale, upscaled,
and the same box (x, y, w, h) is cut out of each result and enlarged 2x with nearest
neighbour so pixels stay visible. Per crop it prints Y-PSNR and GMSD against the original and the
mean gradient magnitude (sharpness), so "sharper" is measured, not just claimed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.images import read_image  # noqa: E402
from common.metrics import gmsd_y, mean_gradient, psnr_y, quantize, rgb_to_y  # noqa: E402
from common.paths import PROJECT_ROOT, data_root  # noqa: E402
from common.resize import bicubic_downscale, bicubic_upscale, mod_crop  # noqa: E402
from models import REGISTRY, load_model  # noqa: E402

OUT = PROJECT_ROOT / "docs" / "sr_crops"


def sharpness(img: np.ndarray) -> float:
    """Mean gradient magnitude of the Y channel (0-255 scale): higher = more high-frequency detail."""
    return mean_gradient(rgb_to_y(quantize(img)))


@torch.inference_mode()
def upscale(name: str, lr: np.ndarray) -> np.ndarray:
    model = load_model(name)
    x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1)))[None]
    return model(x).clamp(0, 1)[0].numpy().transpose(1, 2, 0)


def strip(panels, box_hr, zoom: int = 2) -> Image.Image:
    """Crops of each (label, image) side by side, labelled above."""
    x, y, w, h = box_hr
    tiles = [Image.fromarray(quantize(img[y:y + h, x:x + w]).astype(np.uint8)).resize((w * zoom, h * zoom),
                                                                                        Image.NEAREST)
             for _, img in panels]
    label_h, gap = 18, 4
    canvas = Image.new("RGB", (len(tiles) * (w * zoom + gap) - gap, h * zoom + label_h), "white")
    draw = ImageDraw.Draw(canvas)
    for i, ((label, _), tile) in enumerate(zip(panels, tiles)):
        left = i * (w * zoom + gap)
        canvas.paste(tile, (left, label_h))
        draw.text((left + 3, 3), label, fill="black")
    return canvas


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frame", default="00020.jpg", help="frame of $STSR_DATA/vfi/sequences/cdfi_854x480")
    p.add_argument("--box", default="360,180,180,110", help="x,y,w,h of the crop in original-frame pixels")
    p.add_argument("--models", default="all", help="comma list of SR models or 'all'")
    args = p.parse_args(argv)
    src = data_root() / "vfi" / "sequences" / "cdfi_854x480" / args.frame
    if not src.exists():
        print(f"frame not found: {src} (set STSR_DATA)", file=sys.stderr)
        return 2
    hr_full = mod_crop(read_image(src).rgb, 4)
    names = [n for n, s in REGISTRY.items() if s.task == "sr" and s.has_weights()] if args.models == "all" else \
        args.models.split(",")
    box = tuple(int(v) for v in args.box.split(","))
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"{'model':<22} {'Y-PSNR':>7} {'GMSD':>7} {'sharpness':>9}   (original sharpness in the last row)")
    for name in names:
        scale = REGISTRY[name].scale
        lr = bicubic_downscale(hr_full, scale)
        panels = [("bicubic", bicubic_upscale(lr, scale)), (name, upscale(name, lr))]
        twin = REGISTRY[name].psnr_twin
        if twin and REGISTRY[twin].has_weights():
            panels.append((twin, upscale(twin, lr)))
        panels.append(("original", hr_full))
        x, y, w, h = box
        for label, img in panels[:-1]:
            crop, ref = img[y:y + h, x:x + w], hr_full[y:y + h, x:x + w]
            print(f"{label:<22} {psnr_y(crop, ref):7.2f} {gmsd_y(crop, ref):7.4f} {sharpness(crop):9.2f}")
        strip(panels, box).save(OUT / f"{name}.png", optimize=True)
    print(f"{'original':<22} {'':>7} {'':>7} {sharpness(hr_full[y:y + h, x:x + w]):9.2f}")
    print(f"wrote {len(names)} strips to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
