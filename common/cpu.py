"""What this CPU can do fast, from /proc/cpuinfo (Linux; elsewhere nothing is known).

Why it matters beyond speed: ONNX Runtime's int8 convolutions on a CPU without VNNI/AMX multiply
uint8 x int8 pairs with AVX2's VPMADDUBSW, whose 16-bit pair sums saturate; with full 8-bit weights
that cost flashsr_x2 0.32-0.38 dB Y-PSNR on an AVX2-only AMD EPYC where an AMX Xeon lost 0.05 dB.
7-bit weights (`reduce_range`) cannot saturate, so export/int8.py quantizes with them and serve's
precision rules refuse an older 8-bit-weight file on such a CPU.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Tuple

SPEED_FLAGS = ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f", "avx2")
INT8_DOT_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")  # int8 dot products that accumulate in 32 bits


@lru_cache(maxsize=1)
def cpu_flags() -> Tuple[str, ...]:
    """The SPEED_FLAGS this CPU reports (empty where /proc/cpuinfo is missing)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return ()
    return tuple(f for f in SPEED_FLAGS if f in flags)


def has_int8_dot_product() -> bool:
    """True where int8 convolutions accumulate without 16-bit saturation (VNNI or AMX)."""
    return any(f in INT8_DOT_FLAGS for f in cpu_flags())
