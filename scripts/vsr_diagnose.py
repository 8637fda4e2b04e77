"""Why does the video SR model gain so little over per-frame FlashSR? Ablations of one trained model.

    python scripts/vsr_diagnose.py --model vsr_x4 [--set Vimeo7] [--limit N]

On the evaluation clips (LR = PIL bicubic, evaluate/vsr.py's protocol; Y-PSNR with a `scale` px crop),
each step of the causal model is run with one part switched off or replaced:
  full          the model as shipped
  no_fusion     the fusion's output dropped (= per-frame flashsr_xS)
  no_hidden     the warped previous features zeroed (flow and LR warping error kept)
  zero_flow     the previous features taken unwarped (flow = 0)
  hr_flow       flow from the same flow blocks run on the ground-truth HR frames, scaled down to LR (an oracle)
  flow_up4      the LR frames upscaled x4 instead of x2 for the flow blocks
  mid_flow      the flow asked at t = 0.5 as F_t->1 - F_t->0 (models.vsr flow_time=0.5) instead of at t = 0
  fuse_xK       the fusion's output multiplied by K (is the learned correction just too timid?)
  shipped       the shipped per-frame flashsr_xS (not the video model's fine-tuned copy of it)
It also reports how well the LR flow aligns (mean |LR_t - warp(LR_t-1)| on 0-255, HR the same with the
flow x scale; `farneback`: OpenCV's flow on the HR frames, a reference), the flow's size, the fusion
output's RMS relative to the head features it is added to (and the part of it that changes when the
warped features are zeroed), the fusion's first-layer weight RMS per input group, how far the FlashSR
part moved from the shipped weights, and how far a warp with the grid built in bf16 (as under
training's autocast) lands from the fp32 one.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.metrics import psnr_y  # noqa: E402
from common.resize import bicubic_downscale, mod_crop  # noqa: E402
from evaluate.vsr import load_clips  # noqa: E402
from models import load_model  # noqa: E402
from models.flowinterp import PAD_MULTIPLE, backward_warp  # noqa: E402
from models.frame_padding import pad_tensor_to_multiple  # noqa: E402

VARIANTS = ("full", "no_fusion", "no_hidden", "zero_flow", "hr_flow", "flow_up4", "mid_flow", "fuse_x1.5", "fuse_x2",
            "shipped")


def net_flow(model, cur, prev, up: float, out_hw) -> torch.Tensor:
    """Flow cur -> prev from the model's flow blocks on the frames upscaled by `up`, resized to `out_hw`,
    in pixels of `out_hw`."""
    h, w = cur.shape[2:]
    x = [F.interpolate(f, scale_factor=up, mode="bilinear", align_corners=False) if up != 1 else f
         for f in (cur, prev)]
    x0, _, _ = pad_tensor_to_multiple(x[0], PAD_MULTIPLE)
    x1, _, _ = pad_tensor_to_multiple(x[1], PAD_MULTIPLE)
    flow, _ = model.flow.estimate_flow(x0, x1, cur.new_zeros(cur.shape[0], 1, 1, 1))
    flow = flow[:, 2:4, : round(h * up), : round(w * up)]
    return F.interpolate(flow, size=out_hw, mode="bilinear", align_corners=False) * (out_hw[1] / (w * up))


def midpoint_flow(model, lr, prev) -> torch.Tensor:
    saved, model.flow_time = model.flow_time, 0.5
    try:
        return model.estimate_flow(lr, prev)
    finally:
        model.flow_time = saved


def farneback(cur: np.ndarray, prev: np.ndarray, out_hw) -> torch.Tensor:
    """OpenCV Farneback flow cur -> prev on HR frames (HxWx3 float), resized to `out_hw` in its pixels."""
    grey = [cv2.cvtColor(np.clip(np.rint(f * 255), 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY) for f in (cur, prev)]
    flow = torch.from_numpy(cv2.calcOpticalFlowFarneback(*grey, None, 0.5, 4, 15, 3, 5, 1.2, 0).transpose(2, 0, 1))
    return F.interpolate(flow[None], size=out_hw, mode="bilinear", align_corners=False) * (out_hw[1] / cur.shape[1])


def step(model, lr, prev, hidden, variant, hr=None, hr_prev=None, stats=None, shipped=None):
    """models.vsr.VideoFlashSR.step with one part switched off or replaced (see the module docstring)."""
    hw = lr.shape[2:]
    if variant == "shipped":
        return shipped(lr).clamp(0, 1), hidden, None
    if variant == "zero_flow":
        flow = lr.new_zeros(lr.shape[0], 2, *hw)
    elif variant == "hr_flow":
        flow = net_flow(model, hr, hr_prev, 1, hw)
    elif variant == "flow_up4":
        flow = net_flow(model, lr, prev, 4, hw)
    elif variant == "mid_flow":
        flow = midpoint_flow(model, lr, prev)
    else:
        flow = model.estimate_flow(lr, prev)
    aligned = backward_warp(hidden, flow)
    if variant == "no_hidden":
        aligned = torch.zeros_like(aligned)
    error = lr - backward_warp(prev, flow)
    feat = model.sr.head(lr)
    delta = model.fuse(torch.cat([feat, aligned, error], 1))
    if stats is not None:
        rms = feat.pow(2).mean().sqrt()
        alone = model.fuse(torch.cat([feat, torch.zeros_like(aligned), error], 1))
        stats.append((float(delta.pow(2).mean().sqrt() / rms), float((delta - alone).pow(2).mean().sqrt() / rms)))
    gain = {"no_fusion": 0.0, "fuse_x1.5": 1.5, "fuse_x2": 2.0}.get(variant, 1.0)
    trunk = feat + gain * delta
    trunk = trunk + model.sr.body_tail(model.sr.body(trunk))
    skip = F.interpolate(lr, scale_factor=model.scale, mode="bilinear", align_corners=False)
    return (model.sr.upsample(trunk) + skip).clamp(0, 1), trunk, flow


def to_tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None].float()


@torch.inference_mode()
def run(model, clips, scale: int, shipped, variants=VARIANTS):
    psnr = {v: {} for v in variants}  # variant -> frame index -> [Y-PSNR]
    align = {k: [] for k in ("est", "zero", "hr_oracle", "mid", "farneback", "hr_est", "hr_zero", "hr_mid",
                             "hr_farneback", "flow_px", "hr_flow_px", "mid_px", "farneback_px")}
    ratio = []
    for clip in clips:
        hr = [to_tensor(mod_crop(f, scale)) for f in clip]
        lr = [to_tensor(bicubic_downscale(mod_crop(f, scale), scale)) for f in clip]
        for variant in variants:
            hidden, prev = model.start_hidden(lr[0]), lr[0]
            for t, x in enumerate(lr):
                sr, hidden, flow = step(model, x, prev, hidden, variant, hr[t], hr[max(t - 1, 0)],
                                        ratio if variant == "full" and t > 0 else None, shipped)
                prev = x
                psnr[variant].setdefault(t, []).append(psnr_y(sr[0].numpy().transpose(1, 2, 0),
                                                       hr[t][0].numpy().transpose(1, 2, 0), crop=scale))
                if variant != "full" or t == 0:
                    continue
                hw = x.shape[2:]
                hr_np = [f[0].numpy().transpose(1, 2, 0) for f in (hr[t], hr[t - 1])]
                flows = {"est": flow, "zero": 0 * flow, "hr_oracle": net_flow(model, hr[t], hr[t - 1], 1, hw),
                         "mid": midpoint_flow(model, x, lr[t - 1]), "farneback": farneback(*hr_np, hw)}
                c = 2  # LR border left out of the alignment error
                for key, f in flows.items():
                    align[key].append(float((x - backward_warp(lr[t - 1], f)).abs()[..., c:-c, c:-c].mean() * 255))
                for key in ("est", "zero", "mid", "farneback"):
                    up = F.interpolate(flows[key], scale_factor=scale, mode="bilinear", align_corners=False) * scale
                    err = (hr[t] - backward_warp(hr[t - 1], up)).abs()[..., c * scale:-c * scale, c * scale:-c * scale]
                    align[f"hr_{key}"].append(float(err.mean() * 255))
                for key, name in (("flow_px", "est"), ("hr_flow_px", "hr_oracle"), ("mid_px", "mid"),
                                  ("farneback_px", "farneback")):
                    align[key].append(float(flows[name].norm(dim=1).mean()))
    return psnr, align, ratio


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vsr_x4")
    p.add_argument("--weights", type=Path, default=None)
    p.add_argument("--set", default="Vimeo7")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--variants", default=",".join(VARIANTS), help="a comma list (full and no_fusion always run)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.model, args.weights).eval()
    shipped = load_model(f"flashsr_x{model.scale}")
    clips = load_clips(args.set, args.limit)
    variants = ["full", "no_fusion"] + [v for v in args.variants.split(",") if v in VARIANTS[2:]]
    psnr, align, ratio = run(model, clips, model.scale, shipped, variants)
    base = psnr["no_fusion"]
    print(f"{args.model} on {args.set} ({len(clips)} clips): Y-PSNR by variant (centre = frame {len(clips[0]) // 2})")
    print("| variant | centre | all frames | gain over no_fusion, frame 0..6 |\n|---|---|---|---|")
    centre = len(clips[0]) // 2
    for v in variants:
        rows = psnr[v]
        allf = np.mean([x for r in rows.values() for x in r])
        gains = " ".join(f"{np.mean(rows[t]) - np.mean(base[t]):+.3f}" for t in range(0, min(len(rows), 7)))
        print(f"| {v} | {np.mean(rows[centre]):.3f} | {allf:.3f} | {gains} |")
    print("\nalignment, mean |frame_t - warp(frame_t-1)| (0-255), frames 1..6:")
    for k in ("zero", "est", "mid", "hr_oracle", "farneback"):
        print(f"  LR, flow {k:<9}: {np.mean(align[k]):.3f}")
    for k in ("hr_zero", "hr_est", "hr_mid", "hr_farneback"):
        print(f"  HR, flow {k[3:]:<9} (x{model.scale}): {np.mean(align[k]):.3f}")
    print(f"  mean |flow| LR px: estimated {np.mean(align['flow_px']):.3f}, mid {np.mean(align['mid_px']):.3f}, "
          f"flow blocks on HR {np.mean(align['hr_flow_px']):.3f}, Farneback on HR {np.mean(align['farneback_px']):.3f}")
    ratio = np.array(ratio)
    print(f"fusion output RMS / head-feature RMS (frames 1..6): mean {ratio[:, 0].mean():.4f}, max "
          f"{ratio[:, 0].max():.4f}; the part that depends on the warped features: mean {ratio[:, 1].mean():.4f}")
    weights(model, shipped)
    return 0


def weights(model, shipped) -> None:
    """The fusion's first-layer weights per input group, the FlashSR part's drift, the bf16 grid's error."""
    w, c = model.fuse[0].weight.detach(), model.channels
    groups = {"head features": w[:, :c], "warped features": w[:, c:2 * c], "LR warp error": w[:, 2 * c:]}
    print("fusion conv 1 weight RMS per input group: " + ", ".join(
        f"{k} {float(v.pow(2).mean().sqrt()):.4f}" for k, v in groups.items())
          + f" (PyTorch's init RMS {1 / np.sqrt(3 * w[0].numel()):.4f})")
    print(f"fusion conv 2 (zero at init) weight RMS {float(model.fuse[2].weight.detach().pow(2).mean().sqrt()):.4f}")
    mine, theirs = model.sr.state_dict(), shipped.state_dict()
    drift = [float((mine[k] - theirs[k]).norm() / theirs[k].norm()) for k in theirs if theirs[k].dtype.is_floating_point
             and theirs[k].norm() > 0]
    print(f"FlashSR part vs shipped: relative weight change mean {np.mean(drift):.4f}, max {np.max(drift):.4f}")
    for width in (32, 112):  # backward_warp's grid arithmetic, in the features' dtype, back in pixels
        flow = torch.rand(1, 1, 1, width) - 0.5
        pos = {}
        for dtype in (torch.float32, torch.bfloat16):
            xs = torch.arange(width, dtype=dtype).view(1, 1, 1, -1)
            grid = (xs + flow.to(dtype)) * (2.0 / (width - 1)) - 1.0
            pos[dtype] = (grid.float() + 1) * (width - 1) / 2
        err = (pos[torch.bfloat16] - pos[torch.float32]).abs()
        print(f"bf16 warp grid (features in bf16 under autocast), width {width}: sampling position error mean "
              f"{float(err.mean()):.3f} px, max {float(err.max()):.3f} px")

if __name__ == "__main__":
    sys.exit(main())
