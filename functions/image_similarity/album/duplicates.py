"""Near-duplicate groups: byte-identical files first, then the pairs scoring at or above the threshold that stand
out from their pictures' backgrounds (`find_groups`), then complete-linkage grouping, strongest pairs first.

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
Each picture's background (`pairs_and_background`) comes from the same products: full rows on the exact path (twice
its products), the probed cells on the indexed one (an estimate, at most the true value).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from image_similarity.album.pair_check import Match
from image_similarity.core.score import score
from image_similarity.core.settings import (
    DUPLICATE_BACKGROUND_RANK,
    DUPLICATE_CERTAIN_THRESHOLD,
    DUPLICATE_CHECK_FLOOR,
    DUPLICATE_CHECK_RANK,
    DUPLICATE_MARGIN,
    DUPLICATE_THRESHOLD,
    cpu_count,
)

# Checks candidate pairs (rows of the vectors given to find_groups) by their pixels: album/pair_check.PairChecker.
PairCheck = Callable[[np.ndarray, np.ndarray], list[Match]]

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
    """Rows of one group in input order. Every two members are a match (`find_groups`) or the same bytes."""

    members: list[int]


def similar_pairs(
    vectors: np.ndarray, threshold: float = DUPLICATE_THRESHOLD, block_elements: int = BLOCK_ELEMENTS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair i < j whose score is >= `threshold`: (i, j, score) arrays."""
    return _exact(vectors, threshold, block_elements, 0)[:3]


def similar_pairs_indexed(
    vectors: np.ndarray, threshold: float = DUPLICATE_THRESHOLD, exact_below: int | None = None,
    vectors_per_cell: int = VECTORS_PER_CELL, margin: float = PROBE_MARGIN,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs of `similar_pairs`, in its order and with its scores, found cell by cell from `exact_below` (default
    `EXACT_BELOW`) images: possibly fewer (a pair whose images are not in each other's probed cells), never others."""
    return _indexed(vectors, threshold, exact_below, vectors_per_cell, margin, 0)[:3]


def pairs_and_background(
    vectors: np.ndarray, threshold: float = DUPLICATE_THRESHOLD, rank: int = DUPLICATE_BACKGROUND_RANK,
    exact_below: int | None = None, vectors_per_cell: int = VECTORS_PER_CELL, margin: float = PROBE_MARGIN,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The pairs of `similar_pairs_indexed`, and each image's background: the score of its `rank`-th best match
    among the other images (0 when it has fewer than `rank` others), taken from the products the pair search
    computes anyway.

    Below `exact_below` images the rows are full (each block against every image, not only the later ones): about
    twice the exact search's products, and the exact background. The indexed search knows only the images of the
    cells each row probes, so its background is the `rank`-th best among those: at most the true one (0 when they
    hold fewer than `rank` others), equal to it when the probed cells hold the image's `rank` best matches, as they
    do for an image inside a crowded region (its look-alikes share its cells)."""
    return _indexed(vectors, threshold, exact_below, vectors_per_cell, margin, rank)


def _exact(vectors: np.ndarray, threshold: float, block_elements: int,
           rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The exact search (pairs, scores, background), one block of rows at a time: against the later rows only,
    or against every row when the `rank`-th best of each row is asked for (`rank` > 0)."""
    n = len(vectors)
    min_cos = np.float32(2.0 * threshold - 1.0 - COS_SLACK)  # the score's inverse, for a cheap superset
    block = max(1, block_elements // max(n, 1))
    best = np.full(n, -np.inf, np.float32)  # each row's rank-th best cosine
    found_i, found_j = [], []
    for start in range(0, n, block):
        stop = min(n, start + block)
        offset = 0 if rank else start  # column c is image offset + c
        cos = vectors[start:stop] @ vectors[offset:].T
        rows, cols = np.nonzero(cos >= min_cos)
        upper = cols + offset > rows + start  # keep j > i, drop the diagonal
        found_i.append(rows[upper] + start)
        found_j.append(cols[upper] + offset)
        if rank and n > rank:
            cos[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not its own match
            best[start:stop] = np.partition(cos, n - rank, axis=1)[:, n - rank]
    first = np.concatenate(found_i) if found_i else np.zeros(0, np.int64)
    second = np.concatenate(found_j) if found_j else np.zeros(0, np.int64)
    return (*_decided(vectors, first, second, threshold), _background(best))


def _indexed(vectors: np.ndarray, threshold: float, exact_below: int | None, vectors_per_cell: int, margin: float,
             rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = len(vectors)
    if n < max(EXACT_BELOW if exact_below is None else exact_below, 2):
        return _exact(vectors, threshold, BLOCK_ELEMENTS, rank)
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    cells = max(2, n // vectors_per_cell)
    own, probing_rows, probing_cells = _cells(data, cells, margin)
    filed, filed_bounds = _grouped(own, cells)
    probing, probing_bounds = _grouped(probing_cells, cells)
    probing = probing_rows[probing]
    products = np.diff(filed_bounds) @ np.diff(probing_bounds)
    if _exact_is_cheaper(n, products, rank):  # images so alike that they probe most cells
        return _exact(vectors, threshold, BLOCK_ELEMENTS, rank)
    place = np.empty(n, np.int64)
    place[filed] = np.arange(n)  # where each image sits among the filed ones
    by_cell = data[filed]  # each cell's images contiguous: one slice per product instead of a gather
    min_cos = np.float32(2.0 * threshold - 1.0 - COS_SLACK)  # a cheap superset, decided below
    found, top_rows, top_cos = [], [], []
    for cell in range(cells):
        start, stop = filed_bounds[cell], filed_bounds[cell + 1]
        asking = probing[probing_bounds[cell]:probing_bounds[cell + 1]]
        if start == stop or len(asking) == 0:
            continue
        cos = data[asking] @ by_cell[start:stop].T
        rows, cols = np.nonzero(cos >= min_cos)
        i, j = asking[rows], filed[start + cols]
        different = i != j
        i, j = i[different], j[different]
        found.append(np.minimum(i, j) * np.int64(n) + np.maximum(i, j))
        if rank:  # this cell's `rank` best for each asking row; merged over the row's cells below
            home = np.flatnonzero(own[asking] == cell)
            cos[home, place[asking[home]] - start] = -np.inf  # not its own match
            if cos.shape[1] > rank:
                cos = np.partition(cos, cos.shape[1] - rank, axis=1)[:, cos.shape[1] - rank:]
            top_rows.append(np.repeat(asking, cos.shape[1]))
            top_cos.append(cos.ravel())
    # One pair may be found from both images' probes: unique, and sorted by (i, j) as the exact search returns them.
    pairs = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
    return (*_decided(data, pairs // n, pairs % n, threshold), _background(_rank_th(n, top_rows, top_cos, rank)))


def _exact_is_cheaper(n: int, products: int, rank: int) -> bool:
    """Whether the exact search computes fewer products than the cells would: half the matrix, or all of it when
    the background is asked for (full rows)."""
    return products >= (n * (n - 1) if rank else n * (n - 1) // 2)


def _rank_th(n: int, rows: list[np.ndarray], cos: list[np.ndarray], rank: int) -> np.ndarray:
    """Each row's `rank`-th best cosine among its (row, cosine) candidates; -inf for a row with fewer."""
    best = np.full(n, -np.inf, np.float32)
    if not rank or not rows:
        return best
    rows_all, cos_all = np.concatenate(rows), np.concatenate(cos)
    real = np.isfinite(cos_all)
    rows_all, cos_all = rows_all[real], cos_all[real]
    order = np.lexsort((-cos_all, rows_all))  # each row's candidates, best first
    rows_all, cos_all = rows_all[order], cos_all[order]
    first = np.searchsorted(rows_all, np.arange(n))
    counts = np.searchsorted(rows_all, np.arange(n), side="right") - first
    enough = counts >= rank
    best[enough] = cos_all[first[enough] + rank - 1]
    return best


def _background(best_cos: np.ndarray) -> np.ndarray:
    """Scores of the rank-th best cosines; 0 where there is none (too few other images)."""
    return np.where(np.isfinite(best_cos), score(np.where(np.isfinite(best_cos), best_cos, 0.0)), 0.0)


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
    margin: float = DUPLICATE_MARGIN, certain: float = DUPLICATE_CERTAIN_THRESHOLD, check: PairCheck | None = None,
    check_floor: float = DUPLICATE_CHECK_FLOOR,
) -> list[DuplicateGroup]:
    """Groups of rows. Rows with the same `keys` entry (the file's SHA-256) are one picture and always share a group;
    the distinct pictures are then joined by complete linkage, strongest pair first.

    Which pairs match: a score >= `threshold` that also stands out from both pictures' neighbourhoods, score -
    (b_i + b_j) / 2 >= `margin`, where b_i is picture i's background: its DUPLICATE_BACKGROUND_RANK-th best score in
    the album (`pairs_and_background`; 0 with fewer other pictures, so a small album groups at the threshold alone).
    An album of N pictures has N^2/2 pairs, and look-alikes (screenshots of one dialog, star fields, textures) score
    as high with each other as a photo with its edits; but they also score high with their tenth-best, a photo's
    copies do not. On the validation album (v5) this kept precision 0.94-0.98 at recall 0.26-0.45 for margins
    0.10-0.06, where the rule it replaces (a certain threshold, mutual nearest neighbours below it) had 0.82 at 0.35
    and could never make a group of more than three pictures below the certain threshold (docs/QUALITY.md).
    A score >= `certain` (calibrated at one in a million unrelated album pairs) matches whatever the neighbourhood: a
    re-saved photo among burst shots or crops of one scene scores far above them but not by the margin above their
    tenth-best (on a generated folder of crops of 16 photos the margin alone found 66 of 100 planted re-saves).
    With `check` (the pixel check, album/pair_check.py), a pair the two rules leave out also matches when it scores
    `check_floor` (DUPLICATE_CHECK_FLOOR) or more, one picture is among the other's DUPLICATE_CHECK_RANK best, and
    its pixels agree (Match.agrees): a recapture or a hard crop rarely stands out by the margin, but keeps the
    picture's geometry. On the validation album it raised pair recall from 0.346 to 0.590 at
    precision 0.952 (docs/QUALITY.md).

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
    firsts = np.array([rows[0] for rows in pictures], np.int64)
    floor = min(threshold, check_floor) if check is not None else threshold
    first, second, scores, background = pairs_and_background(vectors[firsts], floor)
    keep = (scores >= threshold) & (scores - (background[first] + background[second]) / 2 >= margin)
    keep |= scores >= certain
    if check is not None:
        asked = ~keep & (scores >= check_floor) & (
            _rank_in_lists(first, second, scores) < DUPLICATE_CHECK_RANK)
        found = check(firsts[first[asked]], firsts[second[asked]])
        keep[asked] = [m.agrees for m in found]
    clusters = _complete_linkage(len(pictures), first[keep], second[keep], scores[keep])
    clustered = {picture for cluster in clusters for picture in cluster}
    clusters += [[picture] for picture, rows in enumerate(pictures) if len(rows) > 1 and picture not in clustered]
    groups = [DuplicateGroup(sorted(row for picture in cluster for row in pictures[picture])) for cluster in clusters]
    return sorted(groups, key=lambda g: g.members[0])


def _rank_in_lists(first: np.ndarray, second: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """For each pair, its place (0 = best) in the score-ordered match list of whichever of its two pictures ranks it
    higher. The lists hold the pairs found, which include each picture's best matches down to the floor."""
    order = np.argsort(-scores, kind="stable")
    ends = np.stack([first[order], second[order]], axis=1).ravel()  # each pair sits in both of its pictures' lists
    pairs = np.repeat(order, 2)
    by_picture = np.argsort(ends, kind="stable")  # stable: each picture's pairs stay in score order
    grouped = ends[by_picture]
    place = np.arange(len(grouped)) - np.searchsorted(grouped, grouped)
    rank = np.full(len(scores), np.iinfo(np.int64).max)
    np.minimum.at(rank, pairs[by_picture], place)
    return rank


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
