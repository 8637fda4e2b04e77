"""Choose the multi-frame fusion's radius and sigma (serve/vsr_fusion.py) on the training videos.

    python scripts/vsr_fusion_tune.py [--windows 3] [--model flashsr_x4]

Never on the benchmark clips: windows of 7 consecutive frames (no cut inside) from every clip in
$STSR_DATA/video (720p halved, as the trainers' HR; 448x256 crops, Vimeo's frame size), LR by PIL
bicubic as evaluate/vsr.py. Prints the centre frame's Y-PSNR (4 px crop) of per-frame SR and of the
fusion for each DIS preset, radius and sigma, without and with the back-projection step, and the warping
error (mean |HR_c - warp(HR_c+k)|, 0-255) of the DIS flows the fusion uses against FlowInterp's flow
blocks (what the recurrent vsr_x4 aligns with).
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.dis_flow import make_flow_estimator, warp  # noqa: E402
from common.images import to_uint8  # noqa: E402
from common.metrics import psnr_y  # noqa: E402
from common.paths import data_root  # noqa: E402
from common.resize import bicubic_downscale  # noqa: E402
from evaluate.common import model_runner  # noqa: E402
from models import load_model  # noqa: E402
from models.flowinterp import PAD_MULTIPLE  # noqa: E402
from models.frame_padding import pad_tensor_to_multiple  # noqa: E402
from serve.vsr_fusion import back_project, compose, fuse, guide  # noqa: E402
from train.vsr_data import load_hr_clips  # noqa: E402

FRAMES, HEIGHT, WIDTH = 7, 256, 448


def windows(per_clip: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    clips = load_hr_clips(data_root() / "video", Path("runs/video_cache"))
    for name, clip in sorted(clips.items()):
        data, cuts = clip["frames"], clip["cuts"]
        for _ in range(per_clip):
            while True:
                start = int(rng.integers(0, len(data) - FRAMES))
                if not any(start <= c < start + FRAMES - 1 for c in cuts):
                    break
            y, x = int(rng.integers(0, data.shape[1] - HEIGHT + 1)), int(rng.integers(0, data.shape[2] - WIDTH + 1))
            yield name, np.asarray(data[start: start + FRAMES, y: y + HEIGHT, x: x + WIDTH], np.float32) / 255.0


def chained(flow_of, guides, c: int) -> dict:
    """{k: flow c -> c + k} composed from the flows between consecutive frames."""
    flows = {}
    for step in (1, -1):
        flow = None
        for k in range(1, c + 1):
            here, there = guides[c + step * (k - 1)], guides[c + step * k]
            flow = flow_of(here, there) if flow is None else compose(flow, flow_of(here, there))
            flows[step * k] = flow
    return flows


def flowinterp_flow(model, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """FlowInterp's blocks at t = 0.5 on the bicubic-upscaled frames: F_t->1 - F_t->0 (a -> b)."""
    def tensor(x):
        batch = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
        return pad_tensor_to_multiple(batch, PAD_MULTIPLE)[0]
    x0, x1 = tensor(a), tensor(b)
    with torch.no_grad():
        f, _ = model.estimate_flow(x0, x1, x0.new_full((1, 1, 1, 1), 0.5))
    return (f[:, 2:4] - f[:, 0:2])[0, :, : a.shape[0], : a.shape[1]].numpy().transpose(1, 2, 0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--windows", type=int, default=3, help="windows per training clip")
    p.add_argument("--model", default="flashsr_x4")
    p.add_argument("--radii", default="1,2,3")
    p.add_argument("--sigmas", default="0.005,0.0075,0.01,0.015,0.02")
    p.add_argument("--presets", default="medium,medium-chained,fast,ultrafast",
                   help="DIS presets to compare; '-chained': flows k frames apart composed from the k consecutive "
                        "ones (what serve.vsr_fusion.FusionUpscaler does) instead of computed directly")
    args = p.parse_args(argv)
    scale = int(args.model.rsplit("x", 1)[1])
    run = model_runner(args.model, None, "cpu")
    presets = args.presets.split(",")
    flow_of = {name: make_flow_estimator(name.split("-")[0]) for name in presets}
    flowinterp = load_model("flowinterp").eval()
    radii = [int(r) for r in args.radii.split(",")]
    sigmas = [float(s) for s in args.sigmas.split(",")]
    scores = {key: [] for key in itertools.product(presets, radii, sigmas, (False, True))}
    single, align = [], {**{f"DIS {n}": [] for n in presets}, "flowinterp blocks": []}
    c = FRAMES // 2
    for name, hr in windows(args.windows):
        lr = [bicubic_downscale(f, scale) for f in hr]
        sr = [to_uint8(np.clip(run(x), 0, 1)).astype(np.float32) / 255.0 for x in lr]
        guides = [guide(x, hr.shape[1:3]) for x in lr]
        single.append(psnr_y(sr[c], hr[c], crop=scale))
        for preset in presets:
            if preset.endswith("-chained"):
                flows = chained(flow_of[preset], guides, c)
            else:
                flows = {k: flow_of[preset](guides[c], guides[c + k]) for k in range(-c, c + 1) if k}
            for k in (-1, 1):
                align[f"DIS {preset}"].append(np.abs(warp(hr[c + k], flows[k])[0] - hr[c])[8:-8, 8:-8].mean() * 255)
            for _, radius, sigma, _ in [key for key in scores if key[0] == preset and not key[3]]:
                ks = [k for k in range(-radius, radius + 1) if k]
                out = fuse(sr[c], [(sr[c + k], flows[k]) for k in ks], scale, sigma)
                scores[(preset, radius, sigma, False)].append(psnr_y(out, hr[c], crop=scale))
                out = back_project(out, lr[c], scale)
                scores[(preset, radius, sigma, True)].append(psnr_y(out, hr[c], crop=scale))
        for k in (-1, 1):
            bic = [cv2.resize(x, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC) for x in (lr[c], lr[c + k])]
            fi = flowinterp_flow(flowinterp, bic[0], bic[1])
            align["flowinterp blocks"].append(np.abs(warp(hr[c + k], fi)[0] - hr[c])[8:-8, 8:-8].mean() * 255)
        print(f"{name}: per-frame {single[-1]:.2f} dB", file=sys.stderr)
    print(f"{len(single)} windows of {FRAMES} frames from the training videos, {args.model}, centre frame Y-PSNR")
    print("warping error of the HR frames +-1 apart (0-255): "
          + ", ".join(f"{k} {np.mean(v):.3f}" for k, v in align.items()))
    print(f"per-frame: {np.mean(single):.3f} dB; fusion gains:")
    print("| DIS preset | radius | back-projection | " + " | ".join(f"sigma {s}" for s in sigmas) + " |")
    print("|---" * (len(sigmas) + 3) + "|")
    for bp, preset, r in itertools.product((False, True), presets, radii):
        print(f"| {preset} | {r} | {'yes' if bp else 'no'} | " + " | ".join(
            f"{np.mean(scores[(preset, r, s, bp)]) - np.mean(single):+.3f}" for s in sigmas) + " |")
    best = max(scores, key=lambda k: np.mean(scores[k]))
    print(f"best: DIS {best[0]}, radius {best[1]}, sigma {best[2]}, back-projection {best[3]}: "
          f"{np.mean(scores[best]):.3f} dB ({np.mean(scores[best]) - np.mean(single):+.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
