"""Near-duplicate groups: byte-identical files first, then the pairs scoring at or above the threshold, then
complete-linkage grouping, strongest pairs first.

The pairs are one rule with two searches, both deciding each candidate with the one score (core.score, float64):
- exact (`similar_pairs`): one block of rows times the rest of the matrix at a time (upper triangle only), so memory
  stays at the vectors plus one block of scores; its time grows with the square of the images (39-144 s of BLAS at
  100,000 on the bench's shared 2-core machine, bench/SEARCH.md);
- cell-indexed (`similar_pairs_indexed`, from `EXACT_BELOW` images): k-means (FAISS) files each image in the cell
  whose centre is nearest, and each image is compared exactly with the images filed in the cells whose centres are
  nearly as close to it as its own (within `PROBE_MARGIN` of cosine): an image deep inside its cell asks one or two
  cells, one on a border asks every cell it borders. A pair is missed only when neither image's cell is among the
  other's probed cells; bench/SEARCH.md counts the pairs it misses against the exact search (and the planted
  near-copies) on 100,000 vectors at two thresholds, and times both.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from image_similarity.core.score import score
from image_similarity.core.settings import (
    DUPLICATE_CERTAIN_THRESHOLD,
    DUPLICATE_NEIGHBOURS,
    DUPLICATE_THRESHOLD,
    cpu_count,
)

# Scores computed per block: 2**25 float32 = 128 MiB, whatever the number of images.
BLOCK_ELEMENTS = 2**25
# float32 products may land a hair below the float64 score: candidates are taken this far below the threshold
# and then decided by the one score function (core.score).
COS_SLACK = 1e-5
# Candidate pairs rescored in float64 at a time: two gathered blocks of 2**14 x 512 float64 = 128 MiB.
DECIDE_CHUNK = 2**14

# The indexed search (measured choices: bench/SEARCH.md, "Duplicates over 100,000 vectors").
EXACT_BELOW = 20_000  # fewer images: the exact search takes seconds, and finds every pair by construction
VECTORS_PER_CELL = 125  # small cells follow groups of similar photos closely, so few probes find their pairs
# Cells probed: those whose centre's cosine with the image is within this margin of its own cell's. It found 99.997 %
# of the pairs at 0.79 (100 % at 0.8833); a fixed 32 probes of 800 cells found 99.907 % with twice the products.
PROBE_MARGIN = 0.05
KMEANS_ITERATIONS = 10
TRAIN_PER_CELL = 64  # k-means learns the centres from this many images per cell at most


@dataclass(frozen=True)
class DuplicateGroup:
    """Rows of one group in input order. Every two members are a match (score >= threshold) or the same bytes."""

    members: list[int]


def similar_pairs(
    vectors: np.ndarray, threshold: float = DUPLICATE_THRESHOLD, block_elements: int = BLOCK_ELEMENTS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair i < j whose score is >= `threshold`: (i, j, score) arrays."""
    n = len(vectors)
    min_cos = np.float32(2.0 * threshold - 1.0 - COS_SLACK)  # the score's inverse, for a cheap superset
    block = max(1, block_elements // max(n, 1))
    found_i, found_j = [], []
    for start in range(0, n, block):
        stop = min(n, start + block)
        cos = vectors[start:stop] @ vectors[start:].T  # row r is image start + r against images start.. n-1
        rows, cols = np.nonzero(cos >= min_cos)
        upper = cols > rows  # column c is image start + c: keep j > i, drop the diagonal
        found_i.append(rows[upper] + start)
        found_j.append(cols[upper] + start)
    first = np.concatenate(found_i) if found_i else np.zeros(0, np.int64)
    second = np.concatenate(found_j) if found_j else np.zeros(0, np.int64)
    return _decided(vectors, first, second, threshold)


def similar_pairs_indexed(
    vectors: np.ndarray, threshold: float = DUPLICATE_THRESHOLD, exact_below: int | None = None,
    vectors_per_cell: int = VECTORS_PER_CELL, margin: float = PROBE_MARGIN,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs of `similar_pairs`, in its order and with its scores, found cell by cell from `exact_below` (default
    `EXACT_BELOW`) images: possibly fewer (a pair whose images are not in each other's probed cells), never others."""
    n = len(vectors)
    if n < max(EXACT_BELOW if exact_below is None else exact_below, 2):
        return similar_pairs(vectors, threshold)
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    cells = max(2, n // vectors_per_cell)
    own, probing_rows, probing_cells = _cells(data, cells, margin)
    filed, filed_bounds = _grouped(own, cells)
    probing, probing_bounds = _grouped(probing_cells, cells)
    probing = probing_rows[probing]
    products = np.diff(filed_bounds) @ np.diff(probing_bounds)
    if products >= n * (n - 1) // 2:  # images so alike that they probe most cells: the exact search is cheaper
        return similar_pairs(vectors, threshold)
    by_cell = data[filed]  # each cell's images contiguous: one slice per product instead of a gather
    min_cos = np.float32(2.0 * threshold - 1.0 - COS_SLACK)  # a cheap superset, decided below
    found = []
    for cell in range(cells):
        start, stop = filed_bounds[cell], filed_bounds[cell + 1]
        asking = probing[probing_bounds[cell]:probing_bounds[cell + 1]]
        if start == stop or len(asking) == 0:
            continue
        rows, cols = np.nonzero(data[asking] @ by_cell[start:stop].T >= min_cos)
        i, j = asking[rows], filed[start + cols]
        different = i != j
        i, j = i[different], j[different]
        found.append(np.minimum(i, j) * np.int64(n) + np.maximum(i, j))
    # One pair may be found from both images' probes: unique, and sorted by (i, j) as the exact search returns them.
    pairs = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
    return _decided(data, pairs // n, pairs % n, threshold)


def _cells(data: np.ndarray, cells: int, margin: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k-means cells of unit rows: each row's own (nearest) cell, and the (row, cell) pairs it probes: every cell
    whose centre's cosine with the row is within `margin` of its own cell's."""
    import faiss  # the album's other commands and the service never need it

    faiss.omp_set_num_threads(cpu_count())
    kmeans = faiss.Kmeans(data.shape[1], cells, niter=KMEANS_ITERATIONS, spherical=True, seed=1,
                          max_points_per_centroid=TRAIN_PER_CELL, min_points_per_centroid=1)
    kmeans.train(data)
    own = np.empty(len(data), np.int64)
    rows, probed = [], []
    block = max(1, BLOCK_ELEMENTS // cells)
    for start in range(0, len(data), block):
        cos = data[start:start + block] @ kmeans.centroids.T
        own[start:start + len(cos)] = nearest = cos.argmax(axis=1)
        r, c = np.nonzero(cos >= cos[np.arange(len(cos)), nearest][:, None] - margin)  # the own cell among them
        rows.append(r + start)
        probed.append(c)
    return own, np.concatenate(rows), np.concatenate(probed)


def _grouped(cells: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions sorted by cell, and where each cell's run starts: positions[bounds[c]:bounds[c + 1]] are in cell c."""
    order = np.argsort(cells, kind="stable")
    return order, np.searchsorted(cells[order], np.arange(count + 1))


def _decided(vectors: np.ndarray, first: np.ndarray, second: np.ndarray,
             threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidate pairs that score >= threshold, and their scores, decided in float64 as the API's pair mode
    decides its score (in chunks: a million candidates would otherwise gather 8 GB)."""
    scores = np.concatenate([np.zeros(0)] + [
        score(np.einsum("ij,ij->i", vectors[first[k:k + DECIDE_CHUNK]].astype(np.float64),
                        vectors[second[k:k + DECIDE_CHUNK]].astype(np.float64)))
        for k in range(0, len(first), DECIDE_CHUNK)])
    keep = scores >= threshold
    return first[keep], second[keep], scores[keep]


def find_groups(
    vectors: np.ndarray, threshold: float = DUPLICATE_THRESHOLD, keys: Sequence[Hashable] | None = None,
    certain: float = DUPLICATE_CERTAIN_THRESHOLD,
) -> list[DuplicateGroup]:
    """Groups of rows. Rows with the same `keys` entry (the file's SHA-256) are one picture and always share a group;
    the distinct pictures are then joined by complete linkage, strongest pair first.

    Which pairs match: a score >= max(`threshold`, `certain`) always does; a score from `threshold` up to there only
    when each picture is among the other's DUPLICATE_NEIGHBOURS best matches. An album of N pictures has N^2/2
    pairs, so the 0.1 % threshold alone let thousands of look-alikes (screenshots of one dialog, star fields) into
    groups; `certain` is calibrated at 1 in 100,000 unrelated pairs but alone misses most edited copies
    (docs/QUALITY.md measures both and this rule).

    Complete linkage: two groups merge only if every picture of one matches every picture of the other, so a chain
    of matches never links unrelated photos (single linkage turned a generated folder of 1,000 crops of 16 photos
    into one group). Strongest pair first: a 0.98 pair is joined before any weaker pair can claim one of its two
    images, so it is never split, as it was when the image with the most matches took all of them.
    """
    keys = list(range(len(vectors))) if keys is None else list(keys)
    copies: dict[Hashable, list[int]] = {}
    for row, key in enumerate(keys):
        copies.setdefault(key, []).append(row)
    pictures = list(copies.values())
    first, second, scores = similar_pairs_indexed(vectors[[rows[0] for rows in pictures]], threshold)
    keep = (scores >= max(threshold, certain)) | _mutual_neighbours(len(pictures), first, second, scores)
    clusters = _complete_linkage(len(pictures), first[keep], second[keep], scores[keep])
    clustered = {picture for cluster in clusters for picture in cluster}
    clusters += [[picture] for picture, rows in enumerate(pictures) if len(rows) > 1 and picture not in clustered]
    groups = [DuplicateGroup(sorted(row for picture in cluster for row in pictures[picture])) for cluster in clusters]
    return sorted(groups, key=lambda g: g.members[0])


def _mutual_neighbours(count: int, first: np.ndarray, second: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """For each pair, whether each of its two pictures is among the other's DUPLICATE_NEIGHBOURS best matches.
    The pairs alone tell: a picture that outscores a match of i is itself a match of i."""
    rows = np.concatenate([first, second])
    by_row = np.lexsort((-np.concatenate([scores, scores]), rows))  # each picture's matches, best first
    rank = np.empty(len(rows), np.int64)
    rank[by_row] = np.arange(len(rows)) - np.searchsorted(rows[by_row], rows[by_row])
    return np.maximum(rank[: len(first)], rank[len(first):]) < DUPLICATE_NEIGHBOURS


def _complete_linkage(count: int, first: np.ndarray, second: np.ndarray, scores: np.ndarray) -> list[list[int]]:
    """Clusters (of more than one item) joined pair by pair in descending score, when all their pairs match."""
    matches: dict[int, set[int]] = {}
    for i, j in zip(first.tolist(), second.tolist(), strict=True):
        matches.setdefault(i, set()).add(j)
        matches.setdefault(j, set()).add(i)
    cluster_of = list(range(count))
    members: dict[int, list[int]] = {}
    refused: set[tuple[int, int]] = set()  # cluster ids are never reused, so a refusal holds until either one grows
    next_id = count
    for k in np.argsort(-scores, kind="stable").tolist():
        a, b = cluster_of[first[k]], cluster_of[second[k]]
        if a == b or (min(a, b), max(a, b)) in refused:
            continue
        left, right = members.get(a, [a]), members.get(b, [b])
        if not all(y in matches[x] for x in left for y in right):
            refused.add((min(a, b), max(a, b)))
        else:
            members.pop(a, None)
            members.pop(b, None)
            members[next_id] = left + right
            for item in left + right:
                cluster_of[item] = next_id
            next_id += 1
    return list(members.values())
