"""`search.duplicates.similar_pairs_indexed`: the exact search's pairs, in its order and scores, found cell by cell."""

from __future__ import annotations

import numpy as np
from image_similarity.album.duplicates import similar_pairs
from image_similarity.search.duplicates import similar_pairs_indexed
from search_helpers import unit_rows


def album(n: int = 3000) -> np.ndarray:
    """Unrelated photos with a near-copy planted after every tenth one."""
    rows = unit_rows(n, seed=2)
    copies = np.arange(10, n, 10)
    rows[copies] = rows[copies - 1] + 0.1 * unit_rows(len(copies), seed=3)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_finds_the_planted_copies_with_the_exact_searchs_scores_and_order():
    vectors = album()
    exact = similar_pairs(vectors, 0.9)
    indexed = similar_pairs_indexed(vectors, 0.9, exact_below=0)
    assert len(exact[0]) == 299
    for got, want in zip(indexed, exact, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_small_inputs_take_the_exact_search():
    vectors = album(500)
    for got, want in zip(similar_pairs_indexed(vectors, 0.9), similar_pairs(vectors, 0.9), strict=True):
        np.testing.assert_array_equal(got, want)


def test_no_pairs_above_the_threshold_is_three_empty_arrays():
    first, second, scores = similar_pairs_indexed(unit_rows(1000, seed=5), 0.95, exact_below=0)
    assert len(first) == len(second) == len(scores) == 0
