"""Near-duplicate groups: byte-identical files first, then exact all-pairs search over unit embeddings in numpy,
then complete-linkage grouping, strongest pairs first.

The search multiplies one block of rows by the rest of the matrix at a time (upper triangle only), so memory stays at
the vectors plus one block of scores however many images there are; at 100,000 images it is seconds to minutes of
BLAS work on a laptop (docs/USAGE.md has the measured figures), so no approximate index is needed at album scale.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from image_similarity.core.score import score
from image_similarity.core.settings import DUPLICATE_CERTAIN_THRESHOLD, DUPLICATE_NEIGHBOURS, DUPLICATE_THRESHOLD

# Scores computed per block: 2**25 float32 = 128 MiB, whatever the number of images.
BLOCK_ELEMENTS = 2**25
# float32 products may land a hair below the float64 score: candidates are taken this far below the threshold
# and then decided by the one score function (core.score).
COS_SLACK = 1e-5


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
    # Candidates are decided in float64, as the API's pair mode decides its score.
    scores = score(np.einsum("ij,ij->i", vectors[first].astype(np.float64), vectors[second].astype(np.float64)))
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
    first, second, scores = similar_pairs(vectors[[rows[0] for rows in pictures]], threshold)
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
