"""Synthetic embeddings shaped like the model's: 512 non-negative features, L2-normalised, in clusters of similar
shots, plus planted near-copies (what `duplicates` must find). Unrelated pairs score about 0.68 on the API's scale,
as unrelated photos do with the real model (0.58-0.76, median 0.66: docs/QUALITY.md), similar shots about 0.85.

Generated in chunks from one seed, so a million rows never need two copies in memory and every run sees the same data.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

DIM = 512
CHUNK = 50_000
# The spread of similar shots around their scene. At 1.8 they scored 0.75 with each other, inside the range of
# unrelated photos: a query's ten best were then noise, and HNSW recall@10 was 0.40 at 200,000 (bench/SEARCH.md).
NOISE = 1.0


def _normalise(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _centres(seed: int, count: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # A shared positive component plus a sparse cluster-specific one (15 % of the features).
    shared = np.abs(rng.normal(size=DIM))
    own = np.abs(rng.normal(size=(count, DIM))) * (rng.random((count, DIM)) < 0.15)
    return _normalise(shared * 0.3 / np.linalg.norm(shared) + own / np.linalg.norm(own, axis=1, keepdims=True))


def _members(centres: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Rows around random centres: similar shots score about 0.85 with each other, unrelated ones about 0.68."""
    noise = rng.normal(scale=NOISE / np.sqrt(DIM), size=(size, DIM))
    return _normalise(np.maximum(0.0, centres[rng.integers(0, len(centres), size)] + noise))


def chunks(n: int, seed: int = 7, copy_every: int = 50, chunk: int = CHUNK) -> Iterator[np.ndarray]:
    """n rows in chunks. Every `copy_every`-th row is a near-copy of the row before it (score about 0.9+)."""
    centres = _centres(seed, _clusters(n))
    for start in range(0, n, chunk):
        rng = np.random.default_rng([seed, start])
        size = min(chunk, n - start)
        rows = _members(centres, rng, size)
        copies = np.arange(start + copy_every - 1, start + size, copy_every) - start
        copies = copies[copies > 0]
        noise = rng.normal(scale=0.3 / np.sqrt(DIM), size=(len(copies), DIM))
        rows[copies] = _normalise(np.maximum(0.0, rows[copies - 1] + noise))
        yield rows


def vectors(n: int, seed: int = 7) -> np.ndarray:
    return np.concatenate(list(chunks(n, seed))) if n else np.zeros((0, DIM), np.float32)


def _clusters(n: int) -> int:
    return max(64, n // 20)


def queries(count: int, n: int, seed: int = 11) -> np.ndarray:
    """`count` fresh rows from the clusters of `vectors(n)`: new photos of the scenes already in the collection."""
    return _members(_centres(7, _clusters(n)), np.random.default_rng(seed), count)
