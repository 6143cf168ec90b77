"""Near-duplicate pairs over many vectors through an index instead of all pairs: the same answer as
`album.duplicates.similar_pairs` (every pair i < j scoring at or above the threshold), in a fraction of the time.

An inverted-file index (FAISS IVF-Flat) cuts the vectors into cells around k-means centres; each vector is compared
only with the vectors of its `nprobe` nearest cells. Duplicates score far above unrelated images, so they land in the
same or neighbouring cells: bench/SEARCH.md measures how many of the exact pairs this finds (all of them, on the bench's
100,000 vectors) and how long it takes. Below `EXACT_BELOW` vectors the exact search is fast enough and is used.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

from image_similarity.album.duplicates import similar_pairs, to_score
from image_similarity.core.settings import DUPLICATE_THRESHOLD

EXACT_BELOW = 20_000
# Cells of about 4 * sqrt(n) vectors each, and the 16 nearest cells searched per vector (measured, bench/SEARCH.md).
CELLS_PER_SQRT = 4
NPROBE = 16
TRAIN_SAMPLE = 100  # k-means sees at most this many vectors per cell
QUERY_BATCH = 4096


def similar_pairs_indexed(vectors: np.ndarray, threshold: float = DUPLICATE_THRESHOLD, nprobe: int = NPROBE,
                          exact_below: int = EXACT_BELOW) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair i < j whose score is >= `threshold`: (i, j, score) arrays, as `similar_pairs` returns them."""
    n = len(vectors)
    if n < exact_below:
        return similar_pairs(vectors, threshold)
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    cells = max(1, int(CELLS_PER_SQRT * math.sqrt(n)))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(data.shape[1]), data.shape[1], cells, faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(0).choice(n, min(n, cells * TRAIN_SAMPLE), replace=False)
    index.train(data[np.sort(sample)])
    index.add(data)
    index.nprobe = min(nprobe, cells)
    min_cos = np.float32(2.0 * threshold - 1.0)
    found_i, found_j = [], []
    for start in range(0, n, QUERY_BATCH):
        # range_search returns, per query, every vector with inner product > radius among the probed cells.
        radius = float(np.nextafter(min_cos, np.float32(-np.inf)))  # it keeps scores > radius: >= min_cos
        limits, _, labels = index.range_search(data[start:start + QUERY_BATCH], radius)
        rows = np.repeat(np.arange(start, start + len(limits) - 1), np.diff(limits).astype(np.int64))
        keep = labels > rows
        found_i.append(rows[keep])
        found_j.append(labels[keep])
    first, second = np.concatenate(found_i), np.concatenate(found_j)
    order = np.lexsort((second, first))
    first, second = first[order].astype(np.int64), second[order].astype(np.int64)
    # The same test, in the same float32 precision, as the exact search.
    cos = np.einsum("ij,ij->i", data[first], data[second])
    keep = cos >= np.float32(min_cos)
    return first[keep], second[keep], to_score(cos[keep].astype(np.float64))
