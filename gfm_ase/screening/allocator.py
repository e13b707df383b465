"""CPU allocator tuning for batched inference.

A batch's per-edge tensors are tens of MB. glibc serves allocations above its mmap threshold with fresh ``mmap``
pages, so every such tensor pays page faults and zeroing on first touch, and is unmapped again when freed, which
can cost more than the arithmetic itself (docs/benchmarks.md). Raising the mmap and trim thresholds keeps freed
blocks in the heap for reuse. This changes process-wide malloc settings (only the thresholds; memory is still
returned to the allocator and reused), so it is done by the screening engine and the benchmarks when they run on
a CPU, never on import. For MD of large cells with ``GFMCalculator`` on a CPU, call :func:`tune_cpu_allocator`
once at the start of the script.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
_DONE = False


def tune_cpu_allocator(mmap_threshold: int = 1 << 30, trim_threshold: int = 1 << 30) -> bool:
    """Raise glibc's mmap/trim thresholds (returns False where that is not possible, e.g. not glibc).

    The mmap threshold must exceed the largest per-edge tensor (an 8,000-atom Si cell has 224k edges x 384 float32
    = 344 MB per tensor, so the default is 1 GiB); the price is a higher peak RSS since freed blocks stay in the
    heap (measurements: docs/benchmarks.md). Values are C ints (< 2 GiB).
    """
    global _DONE
    if not (0 < mmap_threshold < 2**31 and 0 < trim_threshold < 2**31):
        raise ValueError("allocator thresholds are C ints: 1 byte to 2 GiB - 1")
    if _DONE:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(M_TRIM_THRESHOLD, int(trim_threshold)))
    _DONE = ok
    return ok


__all__ = ["tune_cpu_allocator"]
