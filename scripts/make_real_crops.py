"""Before/after crops of real low-quality photos: docs/real_crops/NAME.png, one strip per image.

    python scripts/make_real_crops.py [--model flashsr_real_x4] [--strength 0.5,1.0] [--images 0014.jpg,...]

Inputs are realworld/RealSRSet images as they are (no ground truth: old photos, JPEGs, noisy
shots). Each strip: the LR input (nearest-neighbour enlarged) | bicubic | flashsr_x4 | the real
model at each --strength, the same box cut from each and enlarged --zoom times (nearest).
It also prints the JPEG block-grid strength (common.degradations.blockiness: the mean luma step
across the input's 8-pixel block boundaries, which sit every 8 x scale pixels in the output, over
the mean step elsewhere; 1 = no grid) of the whole input and of every whole output, so whether
the grid survives upscaling is measured, not eyeballed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from make_sr_crops import strip  # noqa: E402  (the same labelled side-by-side strip)

from common.degradations import blockiness  # noqa: E402
from common.images import read_image  # noqa: E402
from common.metrics import mean_gradient, quantize, rgb_to_y  # noqa: E402
from common.paths import PROJECT_ROOT, data_root  # noqa: E402
from common.resize import bicubic_upscale  # noqa: E402
from models import get_spec, load_model  # noqa: E402

OUT = PROJECT_ROOT / "docs" / "real_crops"
DEFAULT_IMAGES = "0014.jpg,0030.jpg,ADE_val_00000114.jpg,oldphoto2.png,dped_crop00061.png,building.png,Lincoln.png"


@torch.inference_mode()
def run_model(model, lr: np.ndarray, strength=None) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1)))[None]
    kw = {"strength": torch.full((1, 1), float(strength))} if strength is not None else {}
    return model(x, **kw).clamp(0, 1)[0].numpy().transpose(1, 2, 0)


def busiest_box(lr: np.ndarray, side: int) -> tuple:
    """The (x, y) of the side x side LR window with the most edge energy (where artifacts show)."""
    y = rgb_to_y(quantize(lr))
    gy, gx = np.gradient(y)
    energy = np.hypot(gx, gy)
    h, w = energy.shape
    best, best_xy = -1.0, (0, 0)
    step = max(4, side // 4)
    for top in range(0, max(1, h - side + 1), step):
        for left in range(0, max(1, w - side + 1), step):
            e = float(energy[top:top + side, left:left + side].mean())
            if e > best:
                best, best_xy = e, (left, top)
    return best_xy


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="flashsr_real_x4")
    p.add_argument("--baseline", default="flashsr_x4")
    p.add_argument("--strength", default="0.5,1.0", help="comma list of strengths for the real model")
    p.add_argument("--images", default=DEFAULT_IMAGES)
    p.add_argument("--box", type=int, default=20, help="LR box side (the crop is box x scale output pixels)")
    p.add_argument("--zoom", type=int, default=3)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    spec = get_spec(args.model)
    scale = spec.scale
    real, base = load_model(args.model), load_model(args.baseline)
    strengths = [float(s) for s in args.strength.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    folder = data_root() / "realworld" / "RealSRSet"
    print(f"{'image':<24} {'input':>6} {'bicubic':>8} {args.baseline:>11} "
          + " ".join(f"{'s=' + format(s, 'g'):>7}" for s in strengths) + "   (blockiness; detail: mean gradient)")
    for name in args.images.split(","):
        lr = read_image(folder / name).rgb
        lr = lr[: lr.shape[0] // 8 * 8, : lr.shape[1] // 8 * 8]  # keep the JPEG grid aligned at 0
        panels = [("LR input (nearest)", np.repeat(np.repeat(lr, scale, 0), scale, 1)),
                  ("bicubic", np.clip(bicubic_upscale(lr, scale), 0, 1)),
                  (args.baseline, run_model(base, lr))]
        panels += [(f"{args.model} s={s:g}", run_model(real, lr, s if spec.strength_input else None))
                   for s in strengths]
        bx, by = busiest_box(lr, args.box)
        box = (bx * scale, by * scale, args.box * scale, args.box * scale)
        strip(panels, box, args.zoom).save(args.out / f"{Path(name).stem}.png")
        grid = [blockiness(img, 8 * scale) for _, img in panels[1:]]
        detail = [mean_gradient(rgb_to_y(quantize(img))) for _, img in panels[1:]]
        print(f"{name:<24} {blockiness(lr, 8):6.3f} " + " ".join(f"{g:8.3f}" for g in grid)
              + "   detail " + " ".join(f"{d:.2f}" for d in detail))
    return 0


if __name__ == "__main__":
    sys.exit(main())
