"""`album.duplicates.similar_pairs_indexed`: the exact search's pairs, in its order and scores, found cell by cell;
and the album's grouping uses it from `EXACT_BELOW` images."""

from __future__ import annotations

import numpy as np
from image_similarity.album import duplicates
from image_similarity.album.duplicates import find_groups, pairs_and_background, similar_pairs, similar_pairs_indexed
from search_helpers import unit_rows


def album(n: int = 3000) -> np.ndarray:
    """Unrelated photos with a near-copy planted after every tenth one."""
    rows = unit_rows(n, seed=2)
    copies = np.arange(10, n, 10)
    rows[copies] = rows[copies - 1] + 0.1 * unit_rows(len(copies), seed=3)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def scenes(n: int = 4000, count: int = 100, spread: float = 0.75) -> np.ndarray:
    """Photos of `count` scenes, close enough within a scene that many pairs straddle two k-means cells."""
    rng = np.random.default_rng(4)
    centres = unit_rows(count, seed=6)
    rows = centres[rng.integers(0, count, n)] + spread * unit_rows(n, seed=7)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def pair_set(found: tuple[np.ndarray, np.ndarray, np.ndarray]) -> set[tuple[int, int]]:
    return set(zip(found[0].tolist(), found[1].tolist(), strict=True))


def test_finds_the_planted_copies_with_the_exact_searchs_scores_and_order():
    vectors = album()
    exact = similar_pairs(vectors, 0.9)
    indexed = similar_pairs_indexed(vectors, 0.9, exact_below=0)
    assert len(exact[0]) == 299
    for got, want in zip(indexed, exact, strict=True):
        np.testing.assert_array_equal(got, want)  # one decision (_decided) for both searches: identical scores


def test_probing_the_bordering_cells_finds_the_pairs_that_straddle_two_cells():
    vectors = scenes()
    exact = pair_set(similar_pairs(vectors, 0.8))
    own_cell_only = pair_set(similar_pairs_indexed(vectors, 0.8, exact_below=0, vectors_per_cell=50, margin=0.0))
    bordering = pair_set(similar_pairs_indexed(vectors, 0.8, exact_below=0, vectors_per_cell=50))
    assert len(exact) > 50_000
    assert own_cell_only < exact and len(exact - own_cell_only) > 0.01 * len(exact)  # the border pairs exist
    assert bordering == exact


def test_small_inputs_take_the_exact_search():
    vectors = album(500)
    for got, want in zip(similar_pairs_indexed(vectors, 0.9), similar_pairs(vectors, 0.9), strict=True):
        np.testing.assert_array_equal(got, want)


def test_images_so_alike_that_they_probe_most_cells_take_the_exact_search(monkeypatch):
    vectors = np.ones((3000, 512), np.float32) + 0.01 * unit_rows(3000, seed=8)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    calls = []
    exact = duplicates._exact
    monkeypatch.setattr(duplicates, "_exact", lambda *args: calls.append(args) or exact(*args))
    first, _, _ = similar_pairs_indexed(vectors, 0.9, exact_below=0)
    assert len(calls) == 1 and len(first) == 3000 * 2999 // 2


def test_the_background_is_the_tenth_best_score_and_asking_for_it_changes_no_pair():
    vectors = scenes(2000)
    *pairs, background = pairs_and_background(vectors, 0.8, rank=10)
    for got, want in zip(pairs, similar_pairs(vectors, 0.8), strict=True):
        np.testing.assert_array_equal(got, want)
    cos = vectors.astype(np.float64) @ vectors.T.astype(np.float64)
    np.fill_diagonal(cos, -np.inf)
    np.testing.assert_allclose(background, 0.5 + 0.5 * -np.sort(-cos, axis=1)[:, 9], atol=1e-6)


def test_the_indexed_background_is_the_exact_one_when_every_cell_is_probed_and_at_most_it_otherwise(monkeypatch):
    vectors = scenes()
    *exact_pairs, exact = pairs_and_background(vectors, 0.8, rank=10)  # fewer than EXACT_BELOW: the exact search
    monkeypatch.setattr(duplicates, "_exact_is_cheaper", lambda *args: False)  # it would be, probing every cell
    *pairs, every_cell = pairs_and_background(vectors, 0.8, rank=10, exact_below=0, vectors_per_cell=50, margin=2.0)
    np.testing.assert_allclose(every_cell, exact, atol=1e-6)
    for got, want in zip(pairs, exact_pairs, strict=True):
        np.testing.assert_array_equal(got, want)
    *_, own_cell = pairs_and_background(vectors, 0.8, rank=10, exact_below=0, vectors_per_cell=50, margin=0.0)
    assert (own_cell <= exact + 1e-6).all() and (own_cell < exact - 1e-3).mean() > 0.01


def test_no_pairs_above_the_threshold_is_three_empty_arrays():
    first, second, scores = similar_pairs_indexed(unit_rows(1000, seed=5), 0.95, exact_below=0)
    assert len(first) == len(second) == len(scores) == 0


def test_grouping_uses_the_indexed_search_from_exact_below(monkeypatch):
    vectors = album()
    exact_groups = find_groups(vectors, 0.9)
    probed = []
    cells = duplicates._cells
    monkeypatch.setattr(duplicates, "_cells", lambda *args: probed.append(args) or cells(*args))
    monkeypatch.setattr(duplicates, "EXACT_BELOW", 1000)
    assert find_groups(vectors, 0.9) == exact_groups and len(exact_groups) == 299
    assert len(probed) == 1
