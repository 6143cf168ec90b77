"""Interleaved timing: every repetition runs every case once, in a fresh random order, so a neighbour's load on the
shared machine lands on all cases alike; medians are reported."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

# A case returns a dict of stage name -> seconds it measured itself, or anything else (only the whole call is timed).
Case = Callable[[], Any]


def interleave(cases: dict[Any, Case], reps: int, warmup: int = 1, seed: int = 0) -> dict[Any, dict[str, float]]:
    """Median milliseconds per case and stage; the stage "total" is the wall time of the whole call."""
    order = list(cases)
    rng = random.Random(seed)
    samples: dict[Any, dict[str, list[float]]] = {key: {} for key in order}
    for rep in range(warmup + reps):
        rng.shuffle(order)
        for key in order:
            start = time.perf_counter()
            result = cases[key]()
            stages = {**(result if isinstance(result, dict) else {}), "total": time.perf_counter() - start}
            if rep >= warmup:
                for stage, seconds in stages.items():
                    samples[key].setdefault(stage, []).append(seconds * 1000.0)
    return {key: {stage: statistics.median(v) for stage, v in stages.items()} for key, stages in samples.items()}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100) of a non-empty list."""
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, max(0, round(q / 100.0 * len(ranked) + 0.5) - 1))]
