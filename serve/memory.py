"""Keeping a long-running server's memory where its requests put it, not where glibc leaves it.

A request allocates a few arrays of hundreds of MB (a 16 MP float image is 192 MB). glibc serves
such blocks with mmap at first, but after the first one is freed it raises its mmap threshold and
later blocks come from per-thread heap arenas, which are rarely given back: a server that answered a
few large requests from several worker threads keeps gigabytes it no longer uses. `bound_heap()`
fixes the threshold (large blocks always mmapped, so freeing them returns the memory) and caps the
number of arenas; `release_free_heap()` (after each request) hands freed heap pages back. Both are
no-ops where the C library is not glibc.
"""
from __future__ import annotations

import ctypes
import functools

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
