"""Grouping keeps precision and the strongest pairs (complete linkage, strongest first; byte-identical files
always together), keep rules as documented, and the Python API a script uses without a server."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from image_similarity.album import embedding as embedding_module
from image_similarity.album.duplicates import find_groups
from image_similarity.album.keep import Candidate, choose


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


def test_below_the_certain_threshold_a_pair_needs_mutual_nearest_neighbours():
    """P matches A, B and C (15-20 degrees), but A, B and C are far closer to each other: for C, P is only the third
    best match. Below `certain` that pair does not count, so P stays out; above it, every match counts."""
    #                         A  B  C  P
    vectors = unit_vectors([0, 3, 5, 20])
    assert [g.members for g in find_groups(vectors, threshold=score(25), certain=1.0)] == [[0, 1, 2]]
    assert [g.members for g in find_groups(vectors, threshold=score(25), certain=score(25))] == [[0, 1, 2, 3]]


def test_mutual_neighbours_are_read_from_the_pairs_alone():
    from image_similarity.album.duplicates import _mutual_neighbours, similar_pairs
    from image_similarity.core.settings import DUPLICATE_NEIGHBOURS

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(60, 4)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    first, second, scores = similar_pairs(vectors, 0.7)
    cos = vectors @ vectors.T
    np.fill_diagonal(cos, -np.inf)
    nearest = np.argsort(-cos, axis=1)[:, :DUPLICATE_NEIGHBOURS]
    expected = [j in nearest[i] and i in nearest[j] for i, j in zip(first.tolist(), second.tolist(), strict=True)]
    assert len(first) > 10 and any(expected) and not all(expected)
    assert _mutual_neighbours(len(vectors), first, second, scores).tolist() == expected


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
