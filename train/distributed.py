"""Data-parallel training under `torchrun --nproc_per_node N`: one process per CPU socket or GPU.

Started by torchrun (WORLD_SIZE > 1 in the environment), a trainer joins a process group (gloo on
CPU, nccl on CUDA), runs its training forward passes through DistributedDataParallel (which
averages the gradients) and reads its share of each global batch. Started plainly, every function
here is a no-op and the script runs as one process exactly as before.

--batch-size is the GLOBAL batch G: rank r of N reads the L = G/N patch indices
[b*G + r*L, b*G + (r+1)*L) of global batch b, so one process with batch G sees the very same
patches, and the mean of the per-rank mean losses (DDP's gradient average) is the global mean.
A run resumed at step s restarts every rank at index s*G, so it may resume with another N.
"""
from __future__ import annotations

import os
import sys
import zlib
from typing import Any, Dict, Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """Rank 0 (or the only process): the one that validates, logs, checkpoints and publishes."""
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join torchrun's process group when launched by it; returns this process's device
    (cuda:LOCAL_RANK on CUDA). Without torchrun, returns `device` unchanged."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def local_batch(global_batch: int) -> int:
    """This rank's share of --batch-size (the global batch); exit if it does not split evenly."""
    n = world_size()
    if global_batch % n:
        raise SystemExit(f"error: --batch-size {global_batch} (the global batch) must be a multiple of the "
                         f"{n} processes")
    return global_batch // n


class ShardedCountingSampler(Sampler):
    """Endless patch indices from global batch `first_batch` on: this rank's slice of each global batch
    (one process: start*G, start*G + 1, ... like train.data.CountingSampler)."""

    def __init__(self, first_batch: int, global_batch: int):
        self.first, self.global_batch = first_batch, global_batch
        self.local = local_batch(global_batch)
        self.offset = rank() * self.local

    def __iter__(self) -> Iterator[int]:
        b = self.first
        while True:
            start = b * self.global_batch + self.offset
            yield from range(start, start + self.local)
            b += 1


def _call(module: nn.Module, method: str, *args, **kwargs):
    return module(*args, **kwargs) if method == "forward" else getattr(module, method)(*args, **kwargs)


class _Methods(nn.Module):
    """Routes a call to any method of the module (forward_levels, predict_ab) through DDP's forward,
    the call that arms the gradient all-reduce for the next backward."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, method: str, *args, **kwargs):
        return _call(self.module, method, *args, **kwargs)


class Replicated:
    """The network as a training step calls it: `net(x)` (forward) or `net.call("forward_levels", ...)`.

    Distributed, both go through DistributedDataParallel; one process calls the module directly.
    `net.module` is the plain module: optimizer, EMA, validation and checkpoints use it."""

    def __init__(self, module: nn.Module, device: torch.device):
        self.module = module
        self.ddp = None
        if world_size() > 1:
            ids = [device.index] if device.type == "cuda" else None
            self.ddp = DistributedDataParallel(_Methods(module), device_ids=ids)

    def __call__(self, *args, **kwargs):
        return self.call("forward", *args, **kwargs)

    def call(self, method: str, *args, **kwargs):
        return _call(self.module, method, *args, **kwargs) if self.ddp is None else self.ddp(method, *args, **kwargs)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def mean_row(row: Dict[str, Any]) -> Dict[str, Any]:
    """A metrics row averaged over the ranks (the global-batch loss); every rank must call it."""
    if not dist.is_initialized():
        return row
    keys = [k for k, v in row.items() if isinstance(v, (int, float, torch.Tensor))]
    values = torch.tensor([float(row[k]) for k in keys], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        values = values.cuda()
    dist.all_reduce(values)
    return {**row, **{k: v / world_size() for k, v in zip(keys, values.tolist())}}


def main_value(value: float) -> float:
    """Rank 0's `value` on every rank (e.g. its clock, so every rank stops and schedules alike)."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64, device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.broadcast(t, 0)
    return float(t.item())


def weights_checksum(module: nn.Module) -> int:
    """CRC32 over the bytes of every parameter: equal only for bit-identical weights. (Buffers such as
    batch-norm running statistics are left out: DDP copies rank 0's at each forward, and rank 0's are saved.)"""
    crc = 0
    for tensor in module.parameters():
        crc = zlib.crc32(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes(), crc)
    return crc


def check_replicas(module: nn.Module) -> None:
    """Gather every rank's weight checksum; rank 0 prints them, and any rank exits if they differ."""
    if not dist.is_initialized():
        return
    sums = [None] * world_size()
    dist.all_gather_object(sums, weights_checksum(module))
    if len(set(sums)) != 1:
        raise SystemExit(f"error: the weights differ across the {len(sums)} processes (checksums {sums})")
    if is_main():
        print(f"weights identical on all {len(sums)} processes (crc32 {sums[0]:08x})", file=sys.stderr, flush=True)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
