"""A server worker gives freed image buffers back to the system (finding 2 of issue 18: memory stayed allocated).

glibc raises its mmap threshold after a large block is freed, so the next large buffer comes from the heap, which it
keeps; the worker's policy fixes the threshold at 1 MB. Measured in a fresh interpreter: the heap's growth when a
4 MB buffer follows a freed 8 MB one."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from pathlib import Path
if sys.argv[1] == "policy":
    from image_similarity.adapters.malloc_policy import return_freed_memory
    assert return_freed_memory()

def heap_kb():
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith("[heap]"):
            start, end = line.split()[0].split("-")
            return (int(end, 16) - int(start, 16)) // 1024
    return 0

first = bytearray(8 << 20)
del first
before = heap_kb()
second = bytearray(4 << 20)
print(heap_kb() - before)
"""


def heap_growth_kb(mode: str) -> int:
    run = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, timeout=60)
    return int(run.stdout)


def test_large_buffers_bypass_the_heap_under_the_worker_policy():
    assert heap_growth_kb("default") >= 4096  # the behaviour the policy exists for
    assert heap_growth_kb("policy") < 1024
