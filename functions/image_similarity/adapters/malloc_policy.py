"""glibc's allocator tuned for a server that decodes large images now and then: memory freed after a burst goes back
to the system instead of staying with the process.

By default glibc gives each thread an arena of its own (up to 8 per CPU) and raises its mmap threshold up to 32 MB
after a large block is freed, so later image buffers come from arenas that it never returns. A worker answering 64
requests for 4096 px PNGs, 16 at a time, kept 293 MB of a 409 MB peak this way; with two arenas and a fixed 1 MB
threshold its peak was 274 MB and it went back to 112 MB, its idle size (bench/security_bounds.py)."""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters, from glibc's malloc.h.
M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8
MMAP_THRESHOLD_BYTES = 1024 * 1024
ARENAS = 2


def return_freed_memory() -> bool:
    """Apply the policy to this process (before it starts threads); False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): nothing to tune
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_ARENA_MAX, ARENAS))
