"""How far better occlusion handling alone could take DIS on a triplet set (a diagnostic, README #20).

    python scripts/interp_block_oracle.py [--set CDFI4] [--block 16]

For each triplet: DIS's two frames warped to t (serve.interp_fusion.dis_warps), their average (the `dis`
row) and the linear blend are the candidates; the oracle takes, for each block x block tile, whichever
candidate is closest to the TRUTH. It is a cheat (it reads the answer), so it bounds what choosing between
these warps could reach; prints mean RGB PSNR of the blend, DIS and the oracle, and DIS's gain per triplet.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.dis_flow import make_flow_estimator, pair_flows  # noqa: E402
from common.metrics import psnr_rgb  # noqa: E402
from evaluate.interpolate import load_triplets  # noqa: E402
from serve.interp_fusion import dis_warps  # noqa: E402


def block_oracle(candidates: np.ndarray, truth: np.ndarray, block: int) -> np.ndarray:
    """HxWx3: per block, the candidate (K,H,W,3) with the lowest squared error against `truth`."""
    k, h, w = candidates.shape[:3]
    err = ((candidates - truth[None]) ** 2).mean(-1)
    bh, bw = -(-h // block), -(-w // block)
    padded = np.pad(err, ((0, 0), (0, bh * block - h), (0, bw * block - w)), mode="edge")
    pick = padded.reshape(k, bh, block, bw, block).mean((2, 4)).argmin(0)
    pick = np.kron(pick, np.ones((block, block), int))[:h, :w]
    return np.take_along_axis(candidates, pick[None, ..., None].repeat(3, -1), 0)[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", default="CDFI4")
    p.add_argument("--block", type=int, default=16)
    args = p.parse_args(argv)
    if args.block < 1:
        p.error("--block must be at least 1")
    flow = make_flow_estimator()
    rows = []
    for f0, truth, f1, t in load_triplets(args.set):
        w0, w1 = dis_warps(f0, f1, t, pair_flows(f0, f1, flow))
        blend, dis = (1 - t) * f0 + t * f1, (1 - t) * w0 + t * w1
        oracle = block_oracle(np.stack([w0, w1, dis, blend]), truth, args.block)
        rows.append((psnr_rgb(blend, truth), psnr_rgb(dis, truth), psnr_rgb(oracle, truth)))
    r = np.array(rows)
    gain = r[:, 1] - r[:, 0]
    print(f"{args.set}, {len(r)} triplets: blend {r[:, 0].mean():.2f} dB, DIS {r[:, 1].mean():.2f}, "
          f"{args.block}x{args.block}-block oracle {r[:, 2].mean():.2f}; DIS over the blend per triplet "
          f"{gain.min():+.2f} to {gain.max():+.2f} (mean {gain.mean():+.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
