"""Thresholds for a built graph, measured on the development corpus's validation split (never on test).

    python model/build.py --calibrate     # runs this on the freshly built file, writes model/calibration.json

The validation set is taken without its same-picture originals (bench/quality/hygiene.py). Two kinds of value:

- `fpr_0.01`, `fpr_0.001` (two-image mode): every original against every copy of another original is an unrelated
  pair (about two million); the threshold at a false-positive rate is the similarity at most that share exceeds.
- `duplicates_margin` (album grouping, `image-similarity duplicates`, album/duplicates.py `find_groups`): how far a
  pair from `fpr_0.01` up must stand out from its two pictures' neighbourhoods. An album of N pictures has N^2/2
  pairs, so a threshold alone lets look-alikes into groups. Measured on the album bench/quality/duplicates_bench.py
  builds from the validation split (every original, the copies of a seeded half of them): the smallest margin of
  MARGIN_GRID whose pair precision reaches DUPLICATES_PRECISION (the issue's target); its spread over random
  halves of the originals says how stable that choice is.
- `duplicates_certain`: the score from which an album pair matches whatever its neighbourhood: at most
  DUPLICATES_CERTAIN_FPR of the same album's unrelated pairs (every two images of different originals) exceed it.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.quality.corpus_set import load_clean_set
from bench.quality.dataset import BenchSet
from bench.quality.duplicates_bench import album, measure_duplicates
from bench.quality.methods import OnnxEmbedding
from bench.quality.metrics import pair_scores, threshold_at_fpr

FPRS = {"fpr_0.01": 0.01, "fpr_0.001": 0.001}
DUPLICATES_THRESHOLD = "fpr_0.01"  # the score from which a pair may be a duplicate (core/settings.py)
DUPLICATES_PRECISION = 0.95
MARGIN_GRID = np.round(np.arange(0.0, 0.2 + 1e-9, 0.005), 3)
HALVES = 10  # random halves of the originals: how far the margin moves with the sample
# About twenty of the validation album's two million unrelated pairs (docs/QUALITY.md: why not one in a million).
DUPLICATES_CERTAIN_FPR = 1e-5


def duplicates_certain(bench: BenchSet, originals: np.ndarray, copies: np.ndarray) -> float:
    """The album score at most DUPLICATES_CERTAIN_FPR of the album's unrelated pairs exceed (unrounded)."""
    vectors, ids, _ = album(bench, originals, copies)
    vectors = vectors.astype(np.float64)
    # The album's score matrix (2,000 images: 32 MB), not the two million pairs' vectors gathered (16 GB).
    scores = 0.5 + 0.5 * vectors @ vectors.T
    upper = np.triu_indices(len(ids), 1)
    unrelated = ids[upper[0]] != ids[upper[1]]
    return threshold_at_fpr(scores[upper][unrelated], DUPLICATES_CERTAIN_FPR)


def duplicates_margin(bench: BenchSet, originals: np.ndarray, copies: np.ndarray, threshold: float,
                      certain: float) -> dict:
    """The smallest margin of MARGIN_GRID whose album pair precision is >= DUPLICATES_PRECISION (the grid's largest
    if none is), with the album's measurement there."""
    for margin in MARGIN_GRID.tolist():
        measured = measure_duplicates(bench, originals, copies, threshold, margin, certain)
        if measured["precision"] >= DUPLICATES_PRECISION:
            break
    return {"margin": margin, **measured}


def half_margins(bench: BenchSet, originals: np.ndarray, copies: np.ndarray, threshold: float,
                 seed: int = 0) -> list[float]:
    """The margin calibrated on HALVES random halves of the originals (each with its own copies)."""
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(HALVES):
        half = np.sort(rng.permutation(len(originals))[: len(originals) // 2])
        renumber = np.full(len(originals), -1)
        renumber[half] = np.arange(len(half))
        keep = np.flatnonzero(renumber[bench.labels] >= 0)
        part = dataclasses.replace(bench, originals=[bench.originals[i] for i in half.tolist()],
                                   names=[bench.names[i] for i in half.tolist()],
                                   copies=[bench.copies[i] for i in keep.tolist()],
                                   labels=renumber[bench.labels[keep]], kinds=bench.kinds[keep])
        certain = duplicates_certain(part, originals[half], copies[keep])
        found.append(duplicates_margin(part, originals[half], copies[keep], threshold, certain)["margin"])
    return found


def calibrate(onnx_path: Path, size: int = 224) -> dict:
    bench = load_clean_set("validation")
    model = OnnxEmbedding("candidate", path=onnx_path, size=size)
    originals, copies = model.embed(bench.originals), model.embed(bench.copies)
    positives, negatives = pair_scores(0.5 + 0.5 * originals @ copies.T, bench.labels)
    thresholds = {key: round(threshold_at_fpr(negatives, fpr), 4) for key, fpr in FPRS.items()}
    thresholds["duplicates_certain"] = round(duplicates_certain(bench, originals, copies), 4)
    found = duplicates_margin(bench, originals, copies, thresholds[DUPLICATES_THRESHOLD],
                              thresholds["duplicates_certain"])
    thresholds["duplicates_margin"] = found["margin"]
    halves = half_margins(bench, originals, copies, thresholds[DUPLICATES_THRESHOLD])
    return {"thresholds": thresholds, "split": "validation", "originals": len(bench.originals),
            "unrelated_pairs": len(negatives), "matching_pairs": len(positives),
            "tpr": {key: round(float((positives > t).mean()), 4) for key, t in thresholds.items() if key in FPRS},
            "duplicates": {"threshold": DUPLICATES_THRESHOLD, "precision_target": DUPLICATES_PRECISION,
                           "certain_fpr": DUPLICATES_CERTAIN_FPR,
                           "album_images": found["images"], "groups": found["groups"],
                           "pairs_true": found["pairs_true"], "pairs_found": found["pairs_found"],
                           "precision": round(found["precision"], 4), "recall": round(found["recall"], 4),
                           "halves": halves}}
