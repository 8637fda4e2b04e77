"""Data-parallel training (train/distributed.py): 2 CPU processes under torchrun against one process."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from train import distributed

ROOT = Path(__file__).resolve().parents[1]


def test_sharded_sampler_splits_each_global_batch_and_resumes_at_step_times_batch():
    # One process (no process group): rank 0 of 1 reads the whole global batch, like CountingSampler.
    it = iter(distributed.ShardedCountingSampler(first_batch=3, global_batch=4))
    assert [next(it) for _ in range(8)] == list(range(12, 20))


def _losses(run_dir: Path) -> dict:
    return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(open(run_dir / "metrics.csv"))}


def _weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "state.pt", map_location="cpu", weights_only=False)["model"]


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_global_batch_and_resume_with_another_count(image_folder, tmp_path):
    from train.sr import main

    common = ["--model", "flashsr", "--scale", "2", "--batch-size", "4", "--patch", "16", "--val-every", "1",
              "--save-every", "2", "--val-count", "2", "--data", str(image_folder), "--workers", "0",
              "--device", "cpu", "--precision", "fp32", "--ema", "0"]
    assert main([*common, "--iters", "4", "--run-dir", str(tmp_path / "one")]) == 0

    # Steps 0-1 in 2 processes (2 patches each), then steps 2-3 resumed by one process.
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "train.sr", *common, "--threads", "1", "--iters", "2",
                          "--run-dir", str(tmp_path / "two")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "weights identical on all 2 processes" in ddp.stderr
    assert sorted(_losses(tmp_path / "two")) == [1, 2]  # rank 0 alone wrote the CSV, one row per step
    assert main([*common, "--iters", "4", "--run-dir", str(tmp_path / "two")]) == 0

    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert sorted(two) == [1, 2, 3, 4]
    # Step 1's loss is the mean over the same 4 patches with the same weights: equal up to float rounding.
    assert two[1] == pytest.approx(one[1], rel=1e-5)
    # Later steps: Adam's first steps move every weight by about +-lr whatever the gradient's size, so a
    # near-zero gradient component whose sign differs by rounding moves the weights by ~lr (1e-6 here).
    assert all(two[s] == pytest.approx(one[s], rel=5e-3) for s in one)
    w_one, w_two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert max((w_one[k] - w_two[k]).abs().max().item() for k in w_one) < 1e-4
