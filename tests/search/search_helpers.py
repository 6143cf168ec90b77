"""Plain helpers for the search tests (a module name of its own: worker processes the tests spawn import it too)."""

from __future__ import annotations

import numpy as np

DIM = 512


def unit_rows(count: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)
