"""Near-duplicate pairs over many vectors without comparing all pairs: the same answer as
`album.duplicates.similar_pairs` (every pair i < j scoring at or above the threshold), in a fraction of the time.

k-means (FAISS) cuts the vectors into `cells`; each vector joins the `SPREAD` cells whose centres are nearest to it,
and the pairs are searched exactly inside each cell, one matrix product per cell. A pair whose two images share no
cell is missed: it trades completeness for time, and bench/SEARCH.md counts the pairs it misses against the exact
search (planted near-copies among them) on 100,000 vectors, and times both. Below `EXACT_BELOW` vectors the exact
search is fast enough and is used.
"""

from __future__ import annotations

import faiss
import numpy as np

from image_similarity.album.duplicates import similar_pairs, to_score
from image_similarity.core.settings import DUPLICATE_THRESHOLD, _cpu_count

EXACT_BELOW = 20_000
VECTORS_PER_CELL = 500
SPREAD = 2  # cells each vector joins: more finds more borderline pairs and costs SPREAD^2 times the products
KMEANS_ITERATIONS = 10
TRAIN_PER_CELL = 64  # k-means sees this many vectors per cell at most


def similar_pairs_indexed(vectors: np.ndarray, threshold: float = DUPLICATE_THRESHOLD, spread: int = SPREAD,
                          exact_below: int = EXACT_BELOW) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair i < j whose score is >= `threshold`: (i, j, score) arrays, as `similar_pairs` returns them."""
    n = len(vectors)
    if n < exact_below:
        return similar_pairs(vectors, threshold)
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    faiss.omp_set_num_threads(_cpu_count())
    cells = max(2, n // VECTORS_PER_CELL)
    kmeans = faiss.Kmeans(data.shape[1], cells, niter=KMEANS_ITERATIONS, spherical=True, seed=1,
                          max_points_per_centroid=TRAIN_PER_CELL)
    kmeans.train(data)
    _, nearest = kmeans.index.search(data, min(spread, cells))  # (n, spread) cell numbers
    members = np.argsort(nearest.ravel(), kind="stable") // nearest.shape[1]  # vector rows, grouped by cell
    bounds = np.searchsorted(np.sort(nearest.ravel()), np.arange(cells + 1))
    min_cos = np.float32(2.0 * threshold - 1.0)
    found = []
    for cell in range(cells):
        rows = members[bounds[cell]:bounds[cell + 1]]
        if len(rows) < 2:
            continue
        cos = data[rows] @ data[rows].T
        first, second = np.nonzero(np.triu(cos >= min_cos, k=1))
        i, j = rows[first], rows[second]
        found.append(np.minimum(i, j) * np.int64(n) + np.maximum(i, j))
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    pairs = np.unique(np.concatenate(found))  # sorted by (i, j): the order of the exact search
    first, second = pairs // n, pairs % n
    # Scores from the same float32 products as the exact search, so the same pairs pass the same test.
    cos = np.einsum("ij,ij->i", data[first], data[second])
    keep = cos >= min_cos
    return first[keep], second[keep], to_score(cos[keep].astype(np.float64))
