"""Weight-space interpolation of a fine-tuned model back toward the model it started from (WiSE-FT).

    python -m train.soup --model flashsr_real_x2 --tuned weights/flashsr_real_x2.safetensors \
        --base weights/flashsr_x2.safetensors --alpha 0.1,0.2,0.3 --out-dir runs/soup_x2

Why: a fine-tune and its starting point usually sit in one linearly connected basin, so
theta = (1 - alpha) * tuned + alpha * base trades the fine-tune's gain (robustness to real
degradations) against the base's strength (clean bicubic input) smoothly, without training
(Wortsman et al. 2022, "Robust fine-tuning of zero-shot models"; Real-ESRGAN's -dn blends two
networks the same way). Tensors the base lacks (a real model's strength MLP) are embedded as the
architecture builds them: a layer the constructor zero-initialises (the MLP's output) is zero in the
base, so the embedded base computes exactly the base model; other missing tensors take the tuned
values (they only feed that zero layer). The soup keeps the tuned checkpoint's constructor args (a
colorizer's chroma gain: re-pick it with train.colorize_calibrate). Each alpha is written as a
checkpoint whose sidecar says how it was made; pick alpha on held-out images
(`python scripts/eval_real.py --sets val --weights ...`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict

import torch

from models import CheckpointError, get_spec
from models.checkpoint import carried_meta, read_sidecar, read_weights, save_checkpoint


def embedded_base(tuned: Dict[str, torch.Tensor], base: Dict[str, torch.Tensor],
                  fresh: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The base model's tensors in the tuned model's layout (see the module docstring)."""
    out = {}
    for name, value in tuned.items():
        if name in base:
            if base[name].shape != value.shape:
                raise CheckpointError(f"--base: '{name}' is {tuple(base[name].shape)}, the tuned model's "
                                      f"{tuple(value.shape)}: not the same architecture")
            out[name] = base[name]
        else:
            out[name] = torch.zeros_like(value) if not fresh[name].any() else value
    return out


def interpolate(tuned: Dict[str, torch.Tensor], base: Dict[str, torch.Tensor], alpha: float
                ) -> Dict[str, torch.Tensor]:
    """(1 - alpha) * tuned + alpha * base, tensor by tensor (integer buffers are taken from tuned)."""
    return {k: (v.float() * (1 - alpha) + base[k].float() * alpha) if v.is_floating_point() else v
            for k, v in tuned.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.soup", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="registered name of the tuned model")
    p.add_argument("--tuned", type=Path, required=True, help="the fine-tuned checkpoint")
    p.add_argument("--base", type=Path, required=True, help="the checkpoint it was fine-tuned from")
    p.add_argument("--alpha", default="0.1,0.2,0.3", help="comma list of base weights in (0, 1)")
    p.add_argument("--out-dir", type=Path, default=Path("runs/soup"))
    args = p.parse_args(argv)
    try:
        alphas = [float(a) for a in args.alpha.split(",")]
        if not all(0.0 <= a <= 1.0 for a in alphas):
            raise ValueError
    except ValueError:
        raise SystemExit(f"error: --alpha must be numbers in [0, 1], not '{args.alpha}'") from None
    spec = get_spec(args.model)
    model = spec.build()
    try:
        tuned, base = read_weights(args.tuned), read_weights(args.base)
        info = read_sidecar(args.tuned)
        base_in_layout = embedded_base(tuned, base, model.state_dict())
    except CheckpointError as exc:
        raise SystemExit(f"error: {exc}") from None
    for alpha in alphas:
        model.load_state_dict(interpolate(tuned, base_in_layout, alpha))
        out = args.out_dir / f"{spec.name}_alpha{alpha:g}.safetensors"
        meta = carried_meta(info)
        meta["lineage"] = list(info.get("lineage", [])) + [
            f"train.soup: (1 - {alpha:g}) x {args.tuned} + {alpha:g} x {args.base} (WiSE-FT weight interpolation)"]
        save_checkpoint(out, model, arch=spec.arch, args=dict(info.get("args", spec.kwargs)), meta=meta)
        print(f"alpha {alpha:g}: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
