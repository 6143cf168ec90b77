"""The pixel check of duplicate candidates (album/pair_check.py): copies that keep a picture's geometry -- a
perspective recapture, a mirrored crop, a recolouring -- agree with one homography over the whole picture; different
photos do not, and a picture that shares only part of another (pages of one dialog) agrees over that part only."""

from __future__ import annotations

import importlib.util
from contextlib import contextmanager

import numpy as np
import pytest
from image_similarity.album.pair_check import NO_MATCH, NOT_READ, PairChecker, keypoints, match
from image_similarity.core.settings import DUPLICATE_CHECK_COVERAGE, DUPLICATE_CHECK_INLIERS
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from skimage import data


def photo(name: str) -> Image.Image:
    pixels = getattr(data, name)()
    return Image.fromarray(pixels if pixels.ndim == 3 else np.stack([pixels] * 3, axis=-1)).convert("RGB")


def recaptured(image: Image.Image) -> Image.Image:
    """A screen photo: the picture seen at an angle inside a grey frame, softened, colour-cast, smaller."""
    w, h = image.size
    tilted = image.transform((w, h), Image.Transform.PERSPECTIVE, (1.1, 0.15, -30, 0.05, 1.0, -20, 0.0004, 0.0002),
                             fill=1, fillcolor=(60, 60, 60))
    frame = Image.new("RGB", (int(w * 1.3), int(h * 1.2)), (30, 30, 30))
    frame.paste(tilted, (int(w * 0.12), int(h * 0.1)))
    warm = ImageEnhance.Color(frame.filter(ImageFilter.GaussianBlur(1.2))).enhance(0.6)
    return Image.merge("RGB", [band.point(lambda v, k=k: min(255, int(v * k))) for band, k in
                               zip(warm.split(), (1.1, 1.0, 0.85), strict=True)]).resize((400, 370))


@pytest.fixture(scope="module")
def astronaut():
    return keypoints(photo("astronaut"))


@pytest.mark.parametrize("copy", [
    recaptured,
    lambda im: ImageOps.mirror(im.crop((100, 50, 400, 380))),
    lambda im: ImageOps.grayscale(im.rotate(20, expand=True)).resize((260, 260)),
], ids=["screen-recapture", "mirrored-crop", "rotated-grey-small"])
def test_copies_that_keep_the_geometry_pass(astronaut, copy):
    found = match(astronaut, keypoints(copy(photo("astronaut"))))
    assert found.agrees and found.inliers >= 3 * DUPLICATE_CHECK_INLIERS and found.coverage >= 0.9


@pytest.mark.parametrize("other", ["coffee", "rocket", "camera", "chelsea", "immunohistochemistry"])
def test_different_photos_do_not(astronaut, other):
    found = match(astronaut, keypoints(photo(other)))
    assert not found.agrees and found.inliers < 2 * DUPLICATE_CHECK_INLIERS


def test_a_picture_sharing_half_of_another_covers_half_of_it(astronaut):
    """As two pages of one settings dialog: many inliers, on the shared half only."""
    shared = photo("astronaut")
    shared.paste(photo("coffee").resize((256, 512)), (256, 0))
    found = match(astronaut, keypoints(shared))
    assert found.inliers >= 3 * DUPLICATE_CHECK_INLIERS and found.coverage == 0.5 < DUPLICATE_CHECK_COVERAGE
    assert not found.agrees


def test_a_flat_picture_has_no_keypoints_and_matches_nothing(astronaut):
    flat = keypoints(Image.new("RGB", (300, 200), (120, 130, 140)))
    assert len(flat.points) == 0 and match(astronaut, flat) == match(flat, astronaut) == NO_MATCH


def test_the_checker_loads_each_row_once_and_gives_unreadable_rows_nothing():
    pictures = {0: photo("astronaut"), 1: recaptured(photo("astronaut")), 2: photo("coffee"), 3: None}
    loads = []

    def load(row):
        loads.append(row)
        return pictures[row]

    check = PairChecker(load, workers=2)
    first, second = np.array([0, 0, 1, 2]), np.array([1, 2, 3, 3])
    found = check(first, second)
    assert len(found) == 4
    assert found[0].agrees and not found[1].agrees
    assert found[2] == found[3] == NOT_READ and not found[2].compared  # row 3 could not be read
    assert found[1].compared and not found[1].agrees  # read and compared: a different picture
    again = check(np.array([0]), np.array([1]))
    assert sorted(loads) == [0, 1, 2, 3] and again == found[:1]  # kept, and deterministic


def test_the_checker_reports_each_pair_to_its_progress():
    """The command line draws its bar from this: told the total first, then one step per pair checked."""
    seen = []

    @contextmanager
    def progress(total, unit):
        seen.append((total, unit))
        yield lambda: seen.append("step")

    check = PairChecker(lambda row: photo(["astronaut", "coffee", "rocket"][row]), progress=progress)
    check(np.array([0, 0, 1]), np.array([1, 2, 2]))
    assert seen == [(3, "pair"), "step", "step", "step"]


def test_without_opencv_the_checker_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cv2" else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match=r"needs OpenCV: pip install 'image-similarity\[cli\]'"):
        PairChecker(lambda row: None)


def test_a_small_memory_budget_recomputes_keypoints_and_gives_the_same_answers():
    """A large album's keypoints do not all stay in memory: with room for two pictures, rows are loaded again when
    needed again, and every answer is what an unbounded checker gives."""
    names = ["astronaut", "coffee", "rocket", "camera"]
    pictures = [photo(n) for n in names] + [recaptured(photo("astronaut"))]
    first, second = np.array([0, 0, 1, 2, 3, 4, 4]), np.array([4, 1, 2, 3, 4, 1, 2])
    loads = []

    def load(row):
        loads.append(row)
        return pictures[row]

    small = PairChecker(load, kept=2, chunk=1)(first, second)
    loaded_small = len(loads)
    loads.clear()
    assert small == PairChecker(load)(first, second) and len(loads) == 5 < loaded_small
    assert small[0].agrees and not any(m.agrees for m in small[1:])
