"""Y-PSNR change of the committed int8 files on THIS CPU, on the held-out crops `export int8` uses.

    python scripts/int8_on_this_cpu.py flashsr_x2 flashsr_x4_mc ...

Why: int8 quality depends on the CPU's int8 instructions (common/cpu.py); the records in
weights/onnx/NAME.int8.onnx.json say what the machine that built them measured. Run this on a new
kind of CPU before trusting them there.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.cpu import cpu_flags  # noqa: E402
from export import int8  # noqa: E402
from export.artifacts import resolve_spec  # noqa: E402
from export.onnx_export import onnx_path  # noqa: E402
from export.onnx_files import low_precision_path  # noqa: E402


def main(names) -> int:
    print(f"CPU flags: {' '.join(cpu_flags()) or 'unknown'}")
    _, held_files = int8.split_training_images(0, int8.CALIBRATION_IMAGES, int8.HELD_OUT_IMAGES)
    for name in names:
        mc = name.endswith("_mc")
        base = name.removesuffix("_mc")
        spec = resolve_spec(base)
        fp32 = onnx_path(base, mc=mc)
        held = int8.sr_crops(held_files, spec.scale, 1)  # export int8's held-out crops (its seed 0, + 1)
        psnr = int8.held_out_psnr(spec, fp32, low_precision_path(fp32, "int8"), held, int8.mc_masks(base, mc, 0))
        change = "  ".join(f"{k} {v - psnr['fp32']:+.4f} dB" for k, v in psnr.items() if k != "fp32")
        print(f"{name:<18} fp32 {psnr['fp32']:.3f} dB  {change}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["flashsr_x2", "flashsr_x4"]))
