"""One home for each rule (issue 18, layout for growth): the API's pair mode and the album's duplicate search give
the same score for the same vectors, and every URL scheme list is the contract's."""

from __future__ import annotations

import numpy as np
from image_similarity.album import duplicates
from image_similarity.album.image_files import is_url
from image_similarity.core import score
from image_similarity.core.contract import URL_SCHEMES
from image_similarity.core.score import similarity


def test_the_album_and_the_api_share_one_score():
    assert duplicates.score is score.score
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(6, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[1] = vectors[0]  # one exact pair, so one group
    [group] = duplicates.find_groups(vectors, threshold=0.99)
    assert group.members == [0, 1]
    first, second, scores = duplicates.similar_pairs(vectors, threshold=0.0)
    for i, j, s in zip(first, second, scores, strict=True):
        assert abs(s - similarity(vectors[i], vectors[j])) < 1e-6


def test_the_album_recognises_the_urls_the_api_fetches():
    assert all(is_url(f"{scheme.upper()}://host/a.jpg") for scheme in URL_SCHEMES)
    assert not is_url("ftp://host/a.jpg") and not is_url("photos/a.jpg")
