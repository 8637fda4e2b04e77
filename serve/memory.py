"""Keeping a long-running server's memory where its requests put it, not where glibc leaves it.

A request allocates a few arrays of hundreds of MB (a 16 MP float image is 192 MB). glibc serves
such blocks with mmap at first, but after the first one is freed it raises its mmap threshold and
later blocks come from per-thread heap arenas, which are rarely given back: a server that answered a
few large requests from several worker threads keeps gigabytes it no longer uses. `bound_heap()`
fixes the threshold (large blocks always mmapped, so freeing them returns the memory) and caps the
number of arenas; `release_free_heap()` (after each request) hands freed heap pages back. Both are
no-ops where the C library is not glibc. `PeakMemory` measures a block's peak growth (the benchmark's
memory column) and `status_kb` reads /proc/self/status.
"""
from __future__ import annotations

import ctypes
import functools
import resource
from typing import Optional

M_MMAP_THRESHOLD = -3  # mallopt parameters (malloc.h)
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024
ARENA_MAX = 4


@functools.lru_cache(maxsize=1)
def _libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def bound_heap() -> bool:
    """Fix glibc's mmap threshold and arena count for this process; True when applied."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(libc.mallopt(M_ARENA_MAX, ARENA_MAX))


def release_free_heap() -> None:
    """Hand freed heap pages back to the OS (glibc malloc_trim)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def status_kb(field: str) -> Optional[int]:
    """A /proc/self/status field in kB (VmRSS, VmHWM), None where there is no /proc."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakMemory:
    """Peak extra memory of a block of runs (serve.bench): host RSS growth, or the CUDA allocator's peak
    for a torch backend on CUDA."""

    def __init__(self, backend):
        self.cuda = backend.device == "cuda" and backend.kind == "torch"
        self.kind = "cuda_alloc" if self.cuda else "rss"

    def __enter__(self):
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        release_free_heap()
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # resets VmHWM to the current RSS
            self.base, self.source = status_kb("VmRSS") * 1024, "VmHWM"
        except (OSError, TypeError):
            self.base, self.source = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "ru_maxrss"
        return self

    def __exit__(self, *exc):
        if self.cuda:
            import torch

            self.peak = torch.cuda.max_memory_allocated() - self.base
        elif self.source == "VmHWM":
            self.peak = (status_kb("VmHWM") or 0) * 1024 - self.base
        else:
            self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self.base
        self.peak = max(int(self.peak), 0)
        return False
