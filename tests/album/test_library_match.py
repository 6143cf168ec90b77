"""`duplicates --against`'s rule (album/library_match.py): each new picture's best library match is reported from the
certain threshold, or from the check's floor when the pixels agree, or at the 0.1 % threshold when the check is off or
cannot read the pictures; a file with a library file's bytes always is."""

from __future__ import annotations

import numpy as np
import pytest
from image_similarity.album.library_match import library_matches
from image_similarity.album.pair_check import NO_MATCH, NOT_READ, Match
from image_similarity.core.settings import (
    DUPLICATE_CERTAIN_THRESHOLD,
    DUPLICATE_CHECK_FLOOR,
    LIBRARY_MATCH_THRESHOLD,
)

LIBRARY = 40


def unit(rng: np.random.Generator, dims: int = 64) -> np.ndarray:
    v = rng.normal(size=dims)
    return v / np.linalg.norm(v)


def at_score(base: np.ndarray, target: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector whose score (0.5 + 0.5 cos) with `base` is `target`."""
    other = unit(rng, len(base))
    other -= (other @ base) * base
    other /= np.linalg.norm(other)
    cos = 2 * target - 1
    return cos * base + np.sqrt(1 - cos**2) * other


# new picture -> (library picture it copies, its score with it); well inside each band so float32 does not move it
BANDS = {
    "certain": (0, (DUPLICATE_CERTAIN_THRESHOLD + 1) / 2),
    "above_threshold": (1, (LIBRARY_MATCH_THRESHOLD + DUPLICATE_CERTAIN_THRESHOLD) / 2),
    "above_floor": (2, (DUPLICATE_CHECK_FLOOR + LIBRARY_MATCH_THRESHOLD) / 2),
    "below_floor": (3, DUPLICATE_CHECK_FLOOR - 0.03),
}


@pytest.fixture(scope="module")
def pictures():
    rng = np.random.default_rng(7)
    library = np.stack([unit(rng) for _ in range(LIBRARY)]).astype(np.float32)
    new = np.stack([at_score(library[lib], target, rng) for lib, target in BANDS.values()]).astype(np.float32)
    new_keys = [f"new{i}" for i in range(len(new))]
    library_keys = [f"lib{j}" for j in range(LIBRARY)]
    return new, new_keys, library, library_keys


class FakeCheck:
    """The pixel check as a table: rows of new pictures whose pair agrees, or could not be read."""

    def __init__(self, agreeing: set[int] = frozenset(), unreadable: set[int] = frozenset()):
        self.agreeing, self.unreadable = agreeing, unreadable
        self.asked: list[tuple[int, int]] = []

    def __call__(self, first: np.ndarray, second: np.ndarray) -> list[Match]:
        self.asked += list(zip(first.tolist(), second.tolist(), strict=True))
        return [NOT_READ if a in self.unreadable else Match(100, 1.0) if a in self.agreeing else NO_MATCH
                for a in first.tolist()]


def reported(matches) -> dict[int, int]:
    return {m.row: m.library_row for m in matches}


def test_without_the_check_the_best_match_is_reported_at_the_threshold_alone(pictures):
    assert reported(library_matches(*pictures)) == {0: 0, 1: 1}


def test_with_the_check_a_match_needs_the_certain_score_or_agreeing_pixels(pictures):
    check = FakeCheck()
    assert reported(library_matches(*pictures, check=check)) == {0: 0}  # 0.1 % alone no longer reports
    # asked about the best match of each picture from the floor up, below certain; library rows follow the new ones
    assert check.asked == [(1, 4 + 1), (2, 4 + 2)]
    agreeing = FakeCheck(agreeing={1, 2, 3})
    assert reported(library_matches(*pictures, check=agreeing)) == {0: 0, 1: 1, 2: 2}  # 3 is under the floor


def test_where_the_pictures_cannot_be_read_the_threshold_decides_as_without_the_check(pictures):
    check = FakeCheck(unreadable={1, 2})
    assert reported(library_matches(*pictures, check=check)) == {0: 0, 1: 1}


def test_a_given_threshold_is_the_checks_floor_and_the_fallback(pictures):
    lowered = library_matches(*pictures, threshold=0.8, check=FakeCheck(agreeing={3}), check_floor=0.8)
    assert reported(lowered) == {0: 0, 3: 3}
    assert reported(library_matches(*pictures, certain=1.0, check=FakeCheck())) == {}  # certain turned off


def test_the_same_bytes_match_their_library_file_whatever_the_vectors_and_are_never_checked(pictures):
    new, new_keys, library, library_keys = pictures
    keys = list(new_keys)
    keys[3] = library_keys[17]  # a byte copy of library picture 17, whose vector is far from it (here: corrupt cache)
    check = FakeCheck()
    found = {m.row: m for m in library_matches(new, keys, library, library_keys, check=check)}
    assert found[3].library_row == 17 and found[3].identical and not found[0].identical
    assert all(row != 3 for row, _ in check.asked)


def test_blocks_do_not_change_the_answer_and_an_empty_library_matches_nothing(pictures):
    new, new_keys, library, _ = pictures
    whole = library_matches(*pictures, check=FakeCheck(agreeing={2}))
    assert library_matches(*pictures, check=FakeCheck(agreeing={2}), block_elements=1) == whole
    assert [m.score for m in whole] == pytest.approx([BANDS["certain"][1], BANDS["above_floor"][1]], abs=1e-5)
    assert library_matches(new, new_keys, library[:0], [], check=FakeCheck()) == []
