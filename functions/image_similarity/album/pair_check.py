"""The pixel check of a candidate duplicate pair: do the two pictures share enough local features that one
perspective transform (a homography) maps one onto the other?

An embedding compares whole pictures: look-alikes (screenshots of one application, star fields, textures of one game)
score as high with each other as a photo with its recapture, so a threshold on the score alone cannot keep pair
precision at recall (bench/RESULTS.md). Copy detection systems therefore verify their candidates with local
features; this module is that check, done with OpenCV's SIFT and RANSAC: keypoints of both pictures (the second also
mirrored, since a flipped copy is a copy), Lowe's ratio test, then the homography with the most inliers. A recapture
through a screen or a print, a crop, a rotation or a recolouring keeps its geometry, so its keypoints agree with one
homography all over the picture; two different screenshots of one dialog agree on their shared frame only, so the
inliers must also cover the pictures (`Match.coverage`). core/settings.py holds the bounds, docs/QUALITY.md how they
were chosen.

OpenCV is a dependency of the command line only (functions/requirements-cli.txt): the service never groups albums.
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from image_similarity.album.photo_decode import open_photo, preview
from image_similarity.core.settings import DUPLICATE_CHECK_COVERAGE, DUPLICATE_CHECK_INLIERS, cpu_count

# Pictures are checked at this longest side: the embedding sees 224 px; more keypoints than this only cost time.
SIDE = 512
FEATURES = 1000  # SIFT keeps the strongest keypoints
RATIO = 0.8  # Lowe's ratio test: a match is kept when clearly better than the second-best (his paper's value)
REPROJECTION_PX = 5.0  # RANSAC's inlier distance at SIDE px
RANSAC_ITERATIONS = 2000
# Keypoints kept at most for this many pictures (about 0.25 MB each): a large album's candidates are checked in
# CHUNK pairs at a time, in row order, and pictures no longer needed make room (recomputed if needed again).
KEPT_PICTURES = 2048
CHUNK = 512


@dataclass(frozen=True)
class Keypoints:
    """A picture's SIFT keypoints (x, y at SIDE px) and descriptors, as seen and mirrored, and its size there."""

    points: np.ndarray
    descriptors: np.ndarray | None
    mirrored_points: np.ndarray
    mirrored_descriptors: np.ndarray | None
    size: tuple[int, int]


@dataclass(frozen=True)
class Match:
    """How two pictures agree: `inliers` keypoint matches explained by one homography, spread over `coverage` of
    the cells (GRID x GRID per picture) that hold keypoints inside the overlap (the smaller of the two pictures')."""

    inliers: int
    coverage: float
    compared: bool = True  # False when either picture could not be read (NOT_READ): nothing was compared

    @property
    def agrees(self) -> bool:
        """Whether the two pictures pass the check (core/settings.py says how the bounds were chosen)."""
        return self.inliers >= DUPLICATE_CHECK_INLIERS and self.coverage >= DUPLICATE_CHECK_COVERAGE


NO_MATCH = Match(0, 0.0)
NOT_READ = Match(0, 0.0, compared=False)
GRID = 4


def picture(data: bytes) -> Image.Image:
    """An image file as the check compares it: upright, decoded at reduced scale but no smaller than SIDE."""
    return preview(open_photo(data), 2 * SIDE)


def keypoints(image: Image.Image) -> Keypoints:
    """The keypoints of an upright picture (any mode, any size)."""
    import cv2  # the album's other commands and the service never need it

    grey = image.convert("L")
    grey.thumbnail((SIDE, SIDE))
    sift = cv2.SIFT_create(nfeatures=FEATURES)
    found = [sift.detectAndCompute(np.asarray(picture), None) for picture in (grey, ImageOps.mirror(grey))]
    # SIFT's float descriptors hold whole numbers 0-255: kept as bytes, a quarter of the memory, the same matches
    (points, descriptors), (mirrored, mirrored_descriptors) = [
        (np.array([k.pt for k in kps], np.float32).reshape(-1, 2), None if desc is None else desc.astype(np.uint8))
        for kps, desc in found]
    return Keypoints(points, descriptors, mirrored, mirrored_descriptors, grey.size)


def match(first: Keypoints, second: Keypoints) -> Match:
    """The better agreement of the two pictures, the second as seen or mirrored (more inliers wins)."""
    return max(_match(first.points, first.descriptors, first.size, second.points, second.descriptors, second.size),
               _match(first.points, first.descriptors, first.size, second.mirrored_points,
                      second.mirrored_descriptors, second.size),
               key=lambda m: (m.inliers, m.coverage))


def _match(points_a: np.ndarray, desc_a: np.ndarray | None, size_a: tuple[int, int], points_b: np.ndarray,
           desc_b: np.ndarray | None, size_b: tuple[int, int]) -> Match:
    import cv2

    if desc_a is None or desc_b is None or len(desc_a) < 4 or len(desc_b) < 4:
        return NO_MATCH
    matches = cv2.BFMatcher(cv2.NORM_L2).knnMatch(desc_b.astype(np.float32), desc_a.astype(np.float32), k=2)
    good = [m[0] for m in matches if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    if len(good) < 4:  # a homography needs four points
        return NO_MATCH
    source = points_b[[m.queryIdx for m in good]]
    target = points_a[[m.trainIdx for m in good]]
    cv2.setRNGSeed(0)  # RANSAC samples at random: the same files always give the same answer
    homography, mask = cv2.findHomography(source, target, cv2.RANSAC, REPROJECTION_PX, maxIters=RANSAC_ITERATIONS,
                                          confidence=0.995)
    if homography is None or abs(np.linalg.det(homography)) < 1e-9:
        return NO_MATCH
    inlying = mask.ravel().astype(bool)
    coverage = min(_coverage(points_a, target[inlying], size_a, np.linalg.inv(homography), size_b),
                   _coverage(points_b, source[inlying], size_b, homography, size_a))
    return Match(int(inlying.sum()), coverage)


def _coverage(points: np.ndarray, inlying: np.ndarray, size: tuple[int, int], to_other: np.ndarray,
              other_size: tuple[int, int]) -> float:
    """The share of this picture's GRID x GRID cells that hold keypoints and whose centre lies inside the other
    picture that also hold an inlier."""
    width, height = size

    def cells(xy: np.ndarray) -> np.ndarray:
        col = np.clip((xy[:, 0] * GRID / width).astype(int), 0, GRID - 1)
        row = np.clip((xy[:, 1] * GRID / height).astype(int), 0, GRID - 1)
        return np.unique(row * GRID + col)

    centres = np.stack([(np.arange(GRID * GRID) % GRID + 0.5) * width / GRID,
                        (np.arange(GRID * GRID) // GRID + 0.5) * height / GRID, np.ones(GRID * GRID)])
    mapped = to_other @ centres
    with np.errstate(divide="ignore", invalid="ignore"):
        x, y = mapped[0] / mapped[2], mapped[1] / mapped[2]
    inside = (mapped[2] > 0) & (x >= 0) & (x < other_size[0]) & (y >= 0) & (y < other_size[1])
    counted = np.intersect1d(cells(points), np.flatnonzero(inside))
    if len(counted) == 0:
        return 0.0
    return float(len(np.intersect1d(counted, cells(inlying))) / len(counted))


# progress(total, unit) -> a context giving the function to call once per item done (the command line's bar).
Progress = Callable[[int, str], AbstractContextManager[Callable[[], object]]]


def no_progress(total: int, unit: str) -> AbstractContextManager[Callable[[], object]]:
    return nullcontext(lambda: None)


class PairChecker:
    """The `Match` of candidate pairs of rows, from `load(row)` (an upright picture, or None for a file that can no
    longer be read: its pairs get NOT_READ); `progress` hears of each pair checked. Each row's keypoints are computed
    once while they stay among the KEPT_PICTURES most recently used."""

    def __init__(self, load: Callable[[int], Image.Image | None], workers: int | None = None,
                 progress: Progress = no_progress, kept: int = KEPT_PICTURES, chunk: int = CHUNK):
        if importlib.util.find_spec("cv2") is None:  # say so now, not from a worker thread halfway through
            raise ModuleNotFoundError("the pixel check of duplicates needs OpenCV: pip install 'image-similarity[cli]' "
                                      "(or opencv-python-headless), or pass pixel_check=False", name="cv2")
        self._load = load
        self._workers = workers or cpu_count()  # OpenCV releases the GIL while it computes
        self._progress = progress
        self._kept = kept
        self._chunk = chunk
        self._keypoints: OrderedDict[int, Keypoints | None] = OrderedDict()

    def __call__(self, first: np.ndarray, second: np.ndarray) -> list[Match]:
        matches: list[Match] = [NO_MATCH] * len(first)
        order = np.lexsort((second, first)).tolist()  # row order: a row's pairs come together
        with ThreadPoolExecutor(self._workers) as pool, self._progress(len(first), "pair") as step:
            for start in range(0, len(order), self._chunk):
                chunk = order[start:start + self._chunk]
                pairs = [(int(first[k]), int(second[k])) for k in chunk]
                self._remember(pool, {row for pair in pairs for row in pair})
                for k, found in zip(chunk, pool.map(self._pair, pairs), strict=True):
                    matches[k] = found
                    step()
        return matches

    def _remember(self, pool: ThreadPoolExecutor, rows: set[int]) -> None:
        """Keypoints for `rows`, computing the missing ones; the least recently used others make room."""
        for row in rows & self._keypoints.keys():
            self._keypoints.move_to_end(row)
        missing = sorted(rows - self._keypoints.keys())
        for row, found in zip(missing, pool.map(self._keypoints_of, missing), strict=True):
            self._keypoints[row] = found
        while len(self._keypoints) > self._kept and next(iter(self._keypoints)) not in rows:  # the chunk's stay
            self._keypoints.popitem(last=False)

    def _keypoints_of(self, row: int) -> Keypoints | None:
        image = self._load(row)
        return None if image is None else keypoints(image)

    def _pair(self, pair: tuple[int, int]) -> Match:
        first, second = self._keypoints[pair[0]], self._keypoints[pair[1]]
        return NOT_READ if first is None or second is None else match(first, second)
