"""`duplicates` on an album built from the test split: pair precision and recall of the groups it finds; and
`duplicates --against` with that album's originals as the library (`measure_library`).

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
from image_similarity.album.library_match import library_matches
from image_similarity.album.pair_check import PairChecker, picture

from .dataset import BenchSet

PLANT_SEED = 1313


def planted_originals(bench: BenchSet) -> np.ndarray:
    """A seeded half of the originals, sorted: the album holds their copies, and they are the library."""
    rng = np.random.default_rng(PLANT_SEED)
    return np.sort(rng.permutation(len(bench.originals))[: len(bench.originals) // 2])


def planted_copies(bench: BenchSet) -> np.ndarray:
    """Which copies the album holds: those of the planted originals."""
    return np.isin(bench.labels, planted_originals(bench))


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


def measure_library(bench: BenchSet, originals: np.ndarray, copies: np.ndarray, threshold: float, certain: float,
                    pixel_check: bool) -> dict:
    """`duplicates NEW --against LIBRARY` as album/library_match.py decides it: the library is the planted originals;
    the new pictures are every copy and every other original, so half of them have nothing in the library and many
    are look-alikes of library pictures. A report is right when it names the new picture's own original; precision
    = right reports / reports, recall = right reports / copies of library originals (per kind too)."""
    library = planted_originals(bench)
    outside = np.setdiff1d(np.arange(len(originals)), library)
    new = np.concatenate([copies, originals[outside]]).astype(np.float32)
    truth = np.concatenate([bench.labels, np.full(len(outside), -1)])
    kinds = np.concatenate([bench.kinds, np.full(len(outside), "")])
    files = list(bench.copies) + [bench.originals[i] for i in outside] + [bench.originals[i] for i in library]
    check = PairChecker(lambda row: picture(files[row])) if pixel_check else None
    keys = [f"new {i}" for i in range(len(new))]  # no byte copies here: every decision is the rule's
    found = library_matches(new, keys, originals[library].astype(np.float32), [f"library {i}" for i in library],
                            threshold, certain, check)
    right = np.zeros(len(new), bool)
    reported = np.array([m.row for m in found], np.int64)
    right[reported] = library[[m.library_row for m in found]] == truth[reported]
    should = np.isin(truth, library)
    return {"library": len(library), "new": len(new), "copies_of_library": int(should.sum()),
            "threshold": float(threshold), "certain": float(certain), "pixel_check": pixel_check,
            "reports": len(found), "precision": float(right.sum() / len(found)) if found else 1.0,
            "recall": float(right.sum() / should.sum()) if should.any() else 1.0,
            "found_by_kind": {kind: float(right[should & (kinds == kind)].mean())
                              for kind in sorted(set(kinds[should].tolist()))}}
