"""`duplicates` on an album built from the test split: pair precision and recall of the groups it finds.

The album: every test original; for every other original (seeded), its copies are planted beside it (recaptures,
screenshots, crops and the rest, as the test set made them). A pair is a true duplicate when both images come from
the same original; `image_similarity.album.duplicates.find_groups` is run as `image-similarity duplicates` runs it,
and every pair inside one of its groups counts as found, with the pixel check of candidate pairs (album/pair_check.py)
as `duplicates` runs by default, or without it (`--no-pixel-check`, and the margin's calibration). Per transform
kind: the share of planted copies that end up in their original's group.
"""

from __future__ import annotations

import numpy as np
from image_similarity.album.duplicates import find_groups
from image_similarity.album.pair_check import PairChecker, picture

from .dataset import BenchSet

PLANT_SEED = 1313


def planted_copies(bench: BenchSet) -> np.ndarray:
    """Which copies the album holds: those of a seeded half of the originals."""
    rng = np.random.default_rng(PLANT_SEED)
    planted = rng.permutation(len(bench.originals))[: len(bench.originals) // 2]
    return np.isin(bench.labels, planted)


def album(bench: BenchSet, originals: np.ndarray, copies: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vectors, original id of each image, transform kind of each image or "" for an original): all originals,
    plus the copies of a seeded half of them."""
    keep = planted_copies(bench)
    vectors = np.concatenate([originals, copies[keep]]).astype(np.float32)
    ids = np.concatenate([np.arange(len(originals)), bench.labels[keep]])
    kinds = np.concatenate([np.full(len(originals), ""), bench.kinds[keep]])
    return vectors, ids, kinds


def pair_precision_recall(groups: list[list[int]], ids: np.ndarray) -> dict[str, float]:
    found = correct = 0
    for members in groups:
        members = np.asarray(members)
        same = ids[members][:, None] == ids[members][None, :]
        found += len(members) * (len(members) - 1) // 2
        correct += (same.sum() - len(members)) // 2
    counts = np.bincount(ids)
    truth = int((counts * (counts - 1) // 2).sum())
    return {"pairs_found": int(found), "pairs_true": truth,
            "precision": float(correct / found) if found else 1.0, "recall": float(correct / truth) if truth else 1.0}


def found_by_kind(groups: list[list[int]], ids: np.ndarray, kinds: np.ndarray) -> dict[str, float]:
    """Per transform kind, the share of planted copies grouped with their own original."""
    group_of = np.full(len(ids), -1)
    for g, members in enumerate(groups):
        group_of[members] = g
    original_group = group_of[:np.count_nonzero(kinds == "")][ids]  # originals come first, in id order
    found = (group_of >= 0) & (group_of == original_group)
    return {kind: float(found[kinds == kind].mean()) for kind in sorted(set(kinds.tolist()) - {""})}


def pixel_checker(bench: BenchSet) -> PairChecker:
    """The pixel check over the album's files, in album order (as `album` lays the images out)."""
    files = bench.originals + [bench.copies[j] for j in np.flatnonzero(planted_copies(bench)).tolist()]
    return PairChecker(lambda row: picture(files[row]))


def measure_duplicates(bench: BenchSet, originals: np.ndarray, copies: np.ndarray, threshold: float,
                       margin: float, certain: float, check: PairChecker | None = None) -> dict:
    """find_groups at `threshold`, `margin` and `certain` on the album of `bench`, with `check` (`pixel_checker`)
    or without (its pair precision and recall, per kind)."""
    vectors, ids, kinds = album(bench, originals, copies)
    groups = [g.members for g in find_groups(vectors, threshold, margin=margin, certain=certain, check=check)]
    return {"images": len(ids), "threshold": float(threshold), "margin": float(margin), "certain": float(certain),
            "pixel_check": check is not None, "groups": len(groups),
            **pair_precision_recall(groups, ids), "found_by_kind": found_by_kind(groups, ids, kinds)}
