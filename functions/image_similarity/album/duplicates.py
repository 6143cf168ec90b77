"""Near-duplicate groups: exact all-pairs search over unit embeddings in numpy, then star grouping.

The search multiplies one block of rows by the rest of the matrix at a time (upper triangle only), so memory stays at
the vectors plus one block of scores however many images there are; at 100,000 images it is seconds to minutes of
BLAS work on a laptop (docs/USAGE.md has the measured figures), so no approximate index is needed at album scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from image_similarity.core.score import score
from image_similarity.core.settings import DUPLICATE_THRESHOLD

# Scores computed per block: 2**25 float32 = 128 MiB, whatever the number of images.
BLOCK_ELEMENTS = 2**25


@dataclass(frozen=True)
class DuplicateGroup:
    """Rows of one group: its leader first, then the others in input order; `scores[k]` is member k's score
    against the leader, so every score shown is at or above the threshold."""

    members: list[int]
    scores: list[float]


def similar_pairs(
    vectors: np.ndarray, threshold: float = DUPLICATE_THRESHOLD, block_elements: int = BLOCK_ELEMENTS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair i < j whose score is >= `threshold`: (i, j, score) arrays."""
    n = len(vectors)
    min_cos = np.float32(2.0 * threshold - 1.0)
    block = max(1, block_elements // max(n, 1))
    found_i, found_j, found_s = [], [], []
    for start in range(0, n, block):
        stop = min(n, start + block)
        cos = vectors[start:stop] @ vectors[start:].T  # row r is image start + r against images start.. n-1
        rows, cols = np.nonzero(cos >= min_cos)
        upper = cols > rows  # column c is image start + c: keep j > i, drop the diagonal
        rows, cols = rows[upper], cols[upper]
        found_i.append(rows + start)
        found_j.append(cols + start)
        found_s.append(score(cos[rows, cols].astype(np.float64)))
    if not found_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_s)


def find_groups(vectors: np.ndarray, threshold: float = DUPLICATE_THRESHOLD) -> list[DuplicateGroup]:
    """Star groups: the image with the most matches leads a group of its still-ungrouped matches, and so on.

    Chains of matches (connected components) are not used: in an album of thousands of photos, the few unrelated
    pairs above any threshold link similar shots into one giant group (a generated folder of 1,000 crops of 16
    photos became a single group). Every member of a star is itself a match of its leader.
    """
    first, second, _ = similar_pairs(vectors, threshold)
    neighbours: dict[int, set[int]] = {}
    for i, j in zip(first.tolist(), second.tolist(), strict=True):
        neighbours.setdefault(i, set()).add(j)
        neighbours.setdefault(j, set()).add(i)
    grouped: set[int] = set()
    groups = []
    for leader in sorted(neighbours, key=lambda i: (-len(neighbours[i]), i)):
        if leader in grouped:
            continue
        rows = [leader, *sorted(neighbours[leader] - grouped)]
        if len(rows) < 2:
            continue
        grouped.update(rows)
        scores = score(vectors[rows].astype(np.float64) @ vectors[leader].astype(np.float64))
        groups.append(DuplicateGroup(rows, [round(float(s), 5) for s in scores]))
    return sorted(groups, key=lambda g: min(g.members))
