"""Grouping keeps precision and the strongest pairs (complete linkage, strongest first; byte-identical files
always together), keep rules as documented, and the Python API a script uses without a server."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from image_similarity.album import embedding as embedding_module
from image_similarity.album.duplicates import find_groups, pairs_and_background
from image_similarity.album.keep import Candidate, choose
from image_similarity.album.pair_check import NO_MATCH, Match
from image_similarity.core.settings import (
    DUPLICATE_CHECK_COVERAGE,
    DUPLICATE_CHECK_FLOOR,
    DUPLICATE_CHECK_INLIERS,
    DUPLICATE_CHECK_RANK,
    DUPLICATE_THRESHOLD,
)


def unit_vectors(degrees: list[float]) -> np.ndarray:
    angles = np.radians(degrees)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


def score(degrees: float) -> float:
    return 0.5 + 0.5 * np.cos(np.radians(degrees))


def test_a_strong_pair_is_not_split_by_an_image_with_more_matches():
    """L matches A, B and C (at 20 degrees); D matches only C, but far more closely (4 degrees). The image with the
    most matches used to take C away from D; the strongest pair now goes first."""
    #                         L    A    B    C    D
    vectors = unit_vectors([0, -20, 19, 20, 24])
    groups = find_groups(vectors, threshold=score(21))
    assert [g.members for g in groups] == [[0, 1], [2, 3, 4]]  # C with D (and B, which matches both)
    for group in groups:
        cos = vectors[group.members] @ vectors[group.members].T
        assert (0.5 + 0.5 * cos).min() >= score(21) - 1e-6  # every two members match: no chaining


def unrelated(count: int, dims: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, dims))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def near(base: np.ndarray, count: int, noise: float, seed: int) -> np.ndarray:
    """`count` vectors around `base`: base plus orthogonal noise, so every two score about the same."""
    rng = np.random.default_rng(seed)
    vectors = base + noise * rng.normal(size=(count, len(base))) / np.sqrt(len(base))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def scores_of(vectors: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * vectors.astype(np.float64) @ vectors.T.astype(np.float64)


def test_five_copies_of_one_picture_among_unrelated_ones_are_one_group():
    """The shipped rule (threshold and calibrated margin): five edited copies scoring about 0.96 with each other are
    one group, which mutual nearest neighbours (each among the other's two best) below the old certain threshold
    (0.9742) could never form."""
    album = unrelated(200)
    copies = near(unrelated(1, seed=9)[0], 5, 0.35, seed=1)
    vectors = np.concatenate([album[:100], copies, album[100:]])
    pairs = scores_of(copies)[np.triu_indices(5, 1)]
    assert pairs.min() > DUPLICATE_THRESHOLD and pairs.max() < 0.9742
    assert [g.members for g in find_groups(vectors)] == [[100, 101, 102, 103, 104]]


def test_a_crowded_family_of_look_alikes_is_not_grouped_but_a_copy_in_a_sparse_region_is():
    """30 look-alikes all score 0.95 with each other, above the threshold, but none stands out from the family's
    tenth best; a copy pair among unrelated pictures does."""
    album = unrelated(300, seed=2)
    family = near(album[0], 30, 0.33, seed=3)
    copy = near(album[5], 1, 0.15, seed=4)
    vectors = np.concatenate([album[1:], family, copy])  # album[5] is row 4, its copy the last row
    family_scores = scores_of(family)[np.triu_indices(30, 1)]
    assert family_scores.min() >= 0.9 and family_scores.max() - family_scores.min() < 0.05
    groups = [g.members for g in find_groups(vectors, threshold=0.9, margin=0.05)]
    assert groups == [[4, len(vectors) - 1]]
    # The same family with no margin: the threshold alone groups look-alikes (what the margin is for).
    assert len(find_groups(vectors, threshold=0.9, margin=0.0)) > 1


def test_a_re_save_among_many_shots_of_one_scene_is_found_by_the_certain_threshold():
    """30 shots of one scene score 0.95 with each other; a re-save of one of them scores 0.998 with it: far above the
    others but not by the margin above its tenth best (also a shot of the scene). The certain threshold finds it."""
    album = unrelated(300, seed=2)
    shots = near(album[0], 30, 0.33, seed=3)
    resave = near(shots[7], 1, 0.08, seed=6)
    vectors = np.concatenate([album[1:], shots, resave])
    shot, copy = len(album) - 1 + 7, len(vectors) - 1
    assert scores_of(vectors)[shot, copy] > 0.99
    assert find_groups(vectors, threshold=0.9, margin=0.06, certain=1.01) == []  # the margin alone misses it
    assert [g.members for g in find_groups(vectors, threshold=0.9, margin=0.06, certain=0.99)] == [[shot, copy]]


def test_an_album_of_fewer_than_eleven_pictures_has_no_background_and_two_pictures_group_at_the_threshold():
    vectors = unrelated(11, seed=5)
    assert pairs_and_background(vectors[:10], 0.9, rank=10)[3].tolist() == [0.0] * 10
    assert (pairs_and_background(vectors, 0.9, rank=10)[3] > 0.3).all()  # ten others: the tenth best counts
    two = unit_vectors([0, 8])  # 0.995: a pair by the threshold alone, the margin measured from 0
    assert scores_of(two)[0, 1] >= DUPLICATE_THRESHOLD and [g.members for g in find_groups(two)] == [[0, 1]]
    apart = unit_vectors([0, 60])  # 0.75: no background makes a pair below the threshold
    assert scores_of(apart)[0, 1] < DUPLICATE_THRESHOLD and find_groups(apart) == []


def test_byte_identical_files_are_grouped_whatever_their_vectors():
    """Hash first: the same bytes are the same picture even if a backend answered slightly differently."""
    vectors = unit_vectors([0, 90, 180])
    groups = find_groups(vectors, threshold=0.99, keys=["same", "other", "same"])
    assert [g.members for g in groups] == [[0, 2]]


def test_identical_files_join_their_near_duplicates_as_one_picture():
    vectors = unit_vectors([0, 0, 3, 90])
    groups = find_groups(vectors, threshold=score(5), keys=["a", "a", "b", "c"])
    assert [g.members for g in groups] == [[0, 1, 2]]


def test_keep_largest_then_least_compressed_then_oldest():
    copied_in_2023 = 1_700_000_000.0  # file times of copies are recent; the capture date is what "oldest" means
    big = Candidate(order=2, pixels=24_000_000, bytes=5_000_000, taken=None, modified=copied_in_2023 + 100)
    small = Candidate(order=0, pixels=2_000_000, bytes=900_000, taken="2020-01-01T00:00:00", modified=copied_in_2023)
    recompressed = Candidate(order=1, pixels=24_000_000, bytes=3_000_000, taken=None, modified=copied_in_2023 + 10)
    assert choose([small, recompressed, big], "largest") == 2  # same pixels: more bytes per pixel wins
    same_but_older = Candidate(order=3, pixels=24_000_000, bytes=5_000_000, taken=None, modified=copied_in_2023)
    assert choose([big, same_but_older], "largest") == 1
    assert choose([big, small, recompressed], "oldest") == 1  # the EXIF date beats file times
    assert choose([big, small, recompressed], "newest") == 0
    assert choose([big, small, recompressed], "path-order") == 1
    with pytest.raises(ValueError, match="largest, oldest, newest, path-order"):
        choose([big], "prettiest")


def test_the_python_api_embeds_a_folder_and_finds_duplicates(album, service, monkeypatch, tmp_path):
    monkeypatch.setattr(embedding_module, "default_service", lambda: service)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the default cache folder, for find_duplicates
    from image_similarity.album import embed_folder, find_duplicates

    run = embed_folder(album.root / "formats", album.root / "misc", cache_dir=tmp_path / "cache")
    assert len(run.locations) == 6 and run.vectors.shape == (6, 512) and run.failures == []
    again = embed_folder(album.root / "formats", cache_dir=tmp_path / "cache")
    assert again.cached == 4  # the cache is shared with the first call (and with the command line)
    result = find_duplicates(album.root / "formats", album.root / "2023", keep="path-order")
    assert list((tmp_path / "xdg" / "image-similarity").rglob("vectors-512.bin"))
    assert [group.keep for group in result.groups] == [str(album.root / "2023" / "astronaut-edit.png"),
                                                       str(album.root / "formats" / "cat.gif")]
    document = result.to_json()
    assert document["scanned"] == 6 and document["keep_rule"] == "path-order"
    assert document["groups"][1]["images"][0]["format"] == "GIF"


def test_the_python_api_moves_and_undoes_with_home_relative_paths(album, service, monkeypatch, tmp_path):
    monkeypatch.setattr(embedding_module, "default_service", lambda: service)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    shutil.copytree(album.root / "formats", tmp_path / "home" / "photos")
    from image_similarity.album import apply_moves, find_duplicates, plan_moves, undo

    result = find_duplicates("~/photos")
    assert [g.keep for g in result.groups] == [str(tmp_path / "home" / "photos" / "cat.tiff")]
    moves = plan_moves(result, ["~/photos"], Path("~/aside"))
    assert sorted(m.target.name for m in moves) == ["cat.gif", "cat.heic", "cat.webp"]
    assert all(m.target.parent == tmp_path / "home" / "aside" for m in moves)
    outcome = apply_moves(moves, tmp_path / "home" / "aside" / "log.json")
    assert len(outcome.done) == 3 and sorted(p.name for p in (tmp_path / "home" / "photos").iterdir()) == ["cat.tiff"]
    assert len(undo(tmp_path / "home" / "aside" / "log.json").done) == 3
    assert len(list((tmp_path / "home" / "photos").iterdir())) == 4


# ---- the pixel check (find_groups' `check`) ------------------------------------------------------------------------
class FakeCheck:
    """Answers the pixel check from a table of agreeing pairs, and records what it was asked."""

    def __init__(self, agreeing: set[tuple[int, int]], inliers: int = 100, coverage: float = 1.0):
        self.agreeing, self.inliers, self.coverage = agreeing, inliers, coverage
        self.asked: list[tuple[int, int]] = []

    def __call__(self, first: np.ndarray, second: np.ndarray) -> list[Match]:
        pairs = list(zip(first.tolist(), second.tolist(), strict=True))
        self.asked += pairs
        return [Match(self.inliers, self.coverage) if (a, b) in self.agreeing else NO_MATCH for a, b in pairs]


def recapture_album() -> tuple[np.ndarray, int, int]:
    """Unrelated pictures, a photo and its recapture: the pair scores from the check's floor up, below where the
    similarity rule alone groups it (under the 1 % threshold)."""
    album = unrelated(300, seed=3)
    photo = unrelated(1, seed=11)[0]
    target = (DUPLICATE_CHECK_FLOOR + DUPLICATE_THRESHOLD) / 2  # a score between the floor and the threshold
    other = unrelated(1, seed=12)[0]
    other -= (other @ photo) * photo
    other /= np.linalg.norm(other)
    cos = 2 * target - 1
    recapture = cos * photo + np.sqrt(1 - cos**2) * other
    vectors = np.concatenate([album, [photo, recapture]]).astype(np.float32)
    return vectors, 300, 301


def test_the_check_groups_a_pair_below_the_rule_when_its_pixels_agree():
    vectors, photo, recapture = recapture_album()
    assert DUPLICATE_CHECK_FLOOR <= scores_of(vectors)[photo, recapture] < DUPLICATE_THRESHOLD
    assert find_groups(vectors) == []
    check = FakeCheck({(photo, recapture)})
    assert [g.members for g in find_groups(vectors, check=check)] == [[photo, recapture]]
    assert (photo, recapture) in check.asked and all(a < b for a, b in check.asked)
    # a threshold the user gives holds for the check too (find_duplicates passes it as the floor)
    assert find_groups(vectors, check=FakeCheck({(photo, recapture)}), check_floor=DUPLICATE_THRESHOLD) == []


@pytest.mark.parametrize(("inliers", "coverage"), [(DUPLICATE_CHECK_INLIERS - 1, 1.0),
                                                   (1000, DUPLICATE_CHECK_COVERAGE - 0.01)])
def test_too_few_inliers_or_inliers_on_part_of_the_picture_are_no_match(inliers, coverage):
    vectors, photo, recapture = recapture_album()
    assert find_groups(vectors, check=FakeCheck({(photo, recapture)}, inliers, coverage)) == []
    assert [g.members for g in find_groups(vectors, check=FakeCheck(
        {(photo, recapture)}, DUPLICATE_CHECK_INLIERS, DUPLICATE_CHECK_COVERAGE))] == [[photo, recapture]]


def test_the_check_is_asked_only_about_pairs_the_rule_leaves_out_above_the_floor_among_the_best_matches():
    """Pairs the similarity rule already groups are not checked; pairs under the floor are not candidates; of a
    picture with many look-alikes above the floor, only pairs among one side's DUPLICATE_CHECK_RANK best are."""
    base = unrelated(1, seed=5)[0]
    crowd = near(base, 40, 0.45, seed=6)  # 40 look-alikes, every two scoring about the same
    vectors = np.concatenate([unrelated(100, seed=7), crowd])
    scores = scores_of(vectors)
    check = FakeCheck(set())
    find_groups(vectors, check=check)
    asked = np.array(check.asked)
    assert len(asked) and (scores[asked[:, 0], asked[:, 1]] >= DUPLICATE_CHECK_FLOOR).all()
    np.fill_diagonal(scores, -1)
    rank = np.argsort(np.argsort(-scores, axis=1, kind="stable"), axis=1)
    assert (np.minimum(rank[asked[:, 0], asked[:, 1]], rank[asked[:, 1], asked[:, 0]]) < DUPLICATE_CHECK_RANK).all()
    above = np.triu(scores >= DUPLICATE_CHECK_FLOOR, 1).sum()
    assert len(asked) < above  # the rank limit left some out
    # copies the rule groups by themselves are never asked about
    twins = np.concatenate([unrelated(100, seed=7), near(base, 2, 0.01, seed=8)])
    check = FakeCheck(set())
    assert [g.members for g in find_groups(twins, check=check)] == [[100, 101]] and (100, 101) not in check.asked


def test_the_check_sees_the_rows_of_the_files_not_the_pictures():
    """Byte-identical files are one picture: the check is asked about the first row of each."""
    vectors, photo, _ = recapture_album()
    vectors = np.concatenate([vectors[:photo], vectors[photo:photo + 1], vectors[photo:]])  # photo twice: rows 300, 301
    keys = list(range(len(vectors)))
    keys[301] = keys[300]
    check = FakeCheck({(300, 302)})
    assert [g.members for g in find_groups(vectors, keys=keys, check=check)] == [[300, 301, 302]]
    assert check.asked and all(301 not in pair for pair in check.asked)
