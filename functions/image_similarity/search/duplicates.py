"""Near-duplicate pairs over many vectors without comparing all pairs: the same answer as
`album.duplicates.similar_pairs` (every pair i < j scoring at or above the threshold), in a fraction of the time.

k-means (FAISS) cuts the vectors into cells, each vector filed in the cell whose centre is nearest; then each vector
is compared, exactly, with the vectors filed in its `PROBES` nearest cells: one matrix product per cell. A pair is
missed when neither image's cell is among the other's nearest: it trades completeness for time, and bench/SEARCH.md
counts the pairs it misses against the exact search (planted near-copies among them) on 100,000 vectors, and times
both. Below `EXACT_BELOW` vectors the exact search is fast enough and is used.
"""

from __future__ import annotations

import faiss
import numpy as np

from image_similarity.album.duplicates import COS_SLACK, similar_pairs
from image_similarity.core.score import score
from image_similarity.core.settings import DUPLICATE_THRESHOLD, cpu_count

EXACT_BELOW = 20_000
VECTORS_PER_CELL = 500
PROBES = 4  # cells each vector is compared with: more finds more borderline pairs, at PROBES times the products
KMEANS_ITERATIONS = 10
TRAIN_PER_CELL = 64  # k-means sees this many vectors per cell at most


def similar_pairs_indexed(vectors: np.ndarray, threshold: float = DUPLICATE_THRESHOLD, probes: int = PROBES,
                          exact_below: int = EXACT_BELOW) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair i < j whose score is >= `threshold`: (i, j, score) arrays, as `similar_pairs` returns them."""
    n = len(vectors)
    if n < exact_below:
        return similar_pairs(vectors, threshold)
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    faiss.omp_set_num_threads(cpu_count())
    cells = max(2, n // VECTORS_PER_CELL)
    kmeans = faiss.Kmeans(data.shape[1], cells, niter=KMEANS_ITERATIONS, spherical=True, seed=1,
                          max_points_per_centroid=TRAIN_PER_CELL)
    kmeans.train(data)
    _, nearest = kmeans.index.search(data, min(probes, cells))  # (n, probes) cell numbers, nearest first
    filed, filed_bounds = _grouped(nearest[:, 0], cells)
    probing, probing_bounds = _grouped(nearest.ravel(), cells)
    probing //= nearest.shape[1]  # positions in the flattened array -> vector rows
    min_cos = np.float32(2.0 * threshold - 1.0 - COS_SLACK)  # a cheap superset, decided below
    found = []
    for cell in range(cells):
        stored = filed[filed_bounds[cell]:filed_bounds[cell + 1]]
        asking = probing[probing_bounds[cell]:probing_bounds[cell + 1]]
        if len(stored) == 0 or len(asking) == 0:
            continue
        rows, cols = np.nonzero(data[asking] @ data[stored].T >= min_cos)
        i, j = asking[rows], stored[cols]
        different = i != j
        i, j = i[different], j[different]
        found.append(np.minimum(i, j) * np.int64(n) + np.maximum(i, j))
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    pairs = np.unique(np.concatenate(found))  # sorted by (i, j): the order of the exact search
    first, second = pairs // n, pairs % n
    # Decided as the exact search decides (album.duplicates.similar_pairs): float64 scores against the threshold.
    scores = score(np.einsum("ij,ij->i", data[first].astype(np.float64), data[second].astype(np.float64)))
    keep = scores >= threshold
    return first[keep], second[keep], scores[keep]


def _grouped(cells: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions sorted by cell, and where each cell's run starts: positions[bounds[c]:bounds[c + 1]] are in cell c."""
    order = np.argsort(cells, kind="stable")
    return order, np.searchsorted(cells[order], np.arange(count + 1))
