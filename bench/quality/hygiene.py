"""Corpus hygiene: originals of one benchmark set that are the same picture as an earlier one, checked by pixels.

The corpus already drops files within 6 bits of pHash (corpus.py), but the packages hold more same-picture files
than that catches: a crop or a larger version of another file, a mirrored stamp, two renders of the moon a day
apart, two screenshots of one dialog a field apart. Counted as unrelated, they are "false positives" that a user
would call duplicates, and they distort the thresholds and the `duplicates` precision. The rule (designed on the
validation split only, by looking at its highest-scoring pairs; applied to test unchanged):

- candidates: each original's NEIGHBOURS nearest originals under v3 (a model file frozen in git history, so the
  candidates never move when the shipped model changes) -- a cheap way to avoid checking every pair;
- two originals are the same picture when SIFT keypoints (the second one also mirrored) give a similarity transform
  (rotation, scale, shift) with at least MIN_INLIERS RANSAC inliers, the aligned overlap covers at least
  MIN_OVERLAP of one of the two pictures, and after a linear tone fit (recolouring) at least MIN_AGREEMENT of the
  overlap's blocks that hold any detail agree within BLOCK_TOLERANCE grey levels.

Of each same-picture pair the later original (in set order) is dropped with its copies; the copy files themselves
are not regenerated. Different pages of one settings dialog or different star fields stay (their blocks disagree).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from .dataset import BenchSet

RULE = "sift-similarity-v1"  # the cached result is thrown away when this changes
SIDE = 320  # pictures are compared at this longest side
NEIGHBOURS = 10
MIN_INLIERS = 12
MIN_OVERLAP = 0.5
BLOCK = 16
BLOCK_TOLERANCE = 10.0
MIN_AGREEMENT = 0.8
FLAT_STD = 6.0  # a block this flat in both pictures and equal in both says nothing either way

_SIFT = cv2.SIFT_create(nfeatures=600)
_MATCHER = cv2.BFMatcher(cv2.NORM_L2)


def _grey(data: bytes, mirror: bool = False) -> np.ndarray:
    image = Image.open(io.BytesIO(data)).convert("L")
    if mirror:
        image = ImageOps.mirror(image)
    image.thumbnail((SIDE, SIDE))
    return np.asarray(image)


def _features(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    keypoints, descriptors = _SIFT.detectAndCompute(grey, None)
    return np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2), descriptors


def _alignment(first: tuple, second: tuple) -> np.ndarray | None:
    """The similarity transform taking the second picture onto the first, or None without enough inliers."""
    (points_a, desc_a), (points_b, desc_b) = first, second
    if desc_a is None or desc_b is None or len(desc_a) < 2 or len(desc_b) < 2:
        return None
    good = [m[0] for m in _MATCHER.knnMatch(desc_b, desc_a, k=2) if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    if len(good) < MIN_INLIERS:
        return None
    source = points_b[[m.queryIdx for m in good]]
    target = points_a[[m.trainIdx for m in good]]
    cv2.setRNGSeed(0)
    matrix, inliers = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC, ransacReprojThreshold=3.0,
                                                  maxIters=2000, confidence=0.995, refineIters=10)
    if matrix is None or int(inliers.sum()) < MIN_INLIERS or abs(np.linalg.det(matrix[:, :2])) < 1e-3:
        return None
    return matrix


def agreement(a: np.ndarray, b: np.ndarray, matrix: np.ndarray) -> tuple[float, float]:
    """(overlap: the larger share of either picture inside the other, share of detailed blocks that agree)."""
    h, w = a.shape
    warped = cv2.warpAffine(b, matrix, (w, h), flags=cv2.INTER_LINEAR)
    inside = cv2.warpAffine(np.ones_like(b, np.uint8), matrix, (w, h), flags=cv2.INTER_NEAREST)
    overlap = max(inside.mean(), min(1.0, inside.sum() / (b.size * abs(np.linalg.det(matrix[:, :2])))))
    inside = cv2.erode(inside, np.ones((3, 3), np.uint8)) > 0  # no interpolated border pixels
    if inside.sum() < BLOCK * BLOCK:
        return float(overlap), 0.0
    design = np.stack([warped[inside], np.ones(int(inside.sum()), np.float32)], axis=1)
    gain, offset = np.linalg.lstsq(design, a[inside], rcond=None)[0]
    fitted = gain * warped + offset
    rows, cols = h // BLOCK, w // BLOCK

    def blocks(x: np.ndarray) -> np.ndarray:
        return x[: rows * BLOCK, : cols * BLOCK].reshape(rows, BLOCK, cols, BLOCK).swapaxes(1, 2).reshape(
            rows, cols, -1)

    whole = blocks(inside.astype(np.float32)).min(axis=2) > 0
    error = np.abs(blocks(fitted) - blocks(a)).mean(axis=2)
    detail = np.maximum(blocks(a).std(axis=2), blocks(fitted).std(axis=2))
    agree = error < BLOCK_TOLERANCE
    counted = whole & ~((detail < FLAT_STD) & agree)
    if not counted.any():
        return float(overlap), 0.0
    return float(overlap), float((agree & counted).sum() / counted.sum())


def _prepared(data: bytes) -> dict[bool, tuple[np.ndarray, tuple]]:
    """The picture as compared (grey, blurred, SIDE px) and its keypoints, as is and mirrored."""
    out = {}
    for mirror in (False, True):
        grey = _grey(data, mirror)
        # compared lightly blurred: resampled thin lines (line art shown larger or smaller) must still agree
        out[mirror] = (cv2.GaussianBlur(grey.astype(np.float32), (0, 0), 1.0), _features(grey))
    return out


def _same(first: dict, second: dict) -> bool:
    a, features_a = first[False]
    for mirror in (False, True):
        b, features_b = second[mirror]
        matrix = _alignment(features_a, features_b)
        if matrix is None:
            continue
        overlap, agree = agreement(a, b, matrix)
        if overlap >= MIN_OVERLAP and agree >= MIN_AGREEMENT:
            return True
    return False


def same_picture(first: bytes, second: bytes) -> bool:
    """The rule above, for two image files."""
    return _same(_prepared(first), _prepared(second))


def candidate_pairs(vectors: np.ndarray, neighbours: int = NEIGHBOURS) -> list[tuple[int, int]]:
    """(i, j), i < j: pairs where one is among the other's `neighbours` nearest."""
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    nearest = np.argsort(-scores, axis=1, kind="stable")[:, : min(neighbours, len(vectors) - 1)]
    return sorted({(min(i, j), max(i, j)) for i, row in enumerate(nearest.tolist()) for j in row})


def same_picture_pairs(originals: list[bytes], vectors: np.ndarray) -> list[tuple[int, int]]:
    prepared: dict[int, dict] = {}

    def get(i: int) -> dict:
        if i not in prepared:
            prepared[i] = _prepared(originals[i])
        return prepared[i]

    return [(i, j) for i, j in candidate_pairs(vectors) if _same(get(i), get(j))]


def dropped(pairs: list[tuple[int, int]]) -> list[int]:
    """The later original of every same-picture pair."""
    return sorted({j for _, j in pairs})


def load_or_find(set_dir: Path, originals: list[bytes], embed: Callable[[list[bytes]], np.ndarray]) -> dict:
    """The set's same-picture pairs and dropped originals, found once and kept beside the set (hygiene.json)."""
    path = set_dir / "hygiene.json"
    if path.exists():
        record = json.loads(path.read_text())
        if record.get("rule") == RULE and record.get("originals") == len(originals):
            return record
    pairs = same_picture_pairs(originals, embed(originals))
    record = {"rule": RULE, "originals": len(originals), "pairs": [list(p) for p in pairs], "dropped": dropped(pairs)}
    path.write_text(json.dumps(record))
    return record


@dataclass(frozen=True)
class Kept:
    """A set without its dropped originals and their copies, and which rows of the full set's originals and copies
    it keeps (vectors are cached for the full set and selected with these)."""

    bench: BenchSet
    originals: np.ndarray
    copies: np.ndarray


def without(bench: BenchSet, drop: list[int]) -> Kept:
    keep_originals = np.setdiff1d(np.arange(len(bench.originals)), np.asarray(drop, int))
    keep_copies = np.flatnonzero(np.isin(bench.labels, keep_originals))
    renumber = np.full(len(bench.originals), -1)
    renumber[keep_originals] = np.arange(len(keep_originals))
    clean = BenchSet(
        originals=[bench.originals[i] for i in keep_originals],
        names=[bench.names[i] for i in keep_originals],
        copies=[bench.copies[j] for j in keep_copies],
        labels=renumber[bench.labels[keep_copies]],
        kinds=bench.kinds[keep_copies],
    )
    return Kept(clean, keep_originals, keep_copies)
