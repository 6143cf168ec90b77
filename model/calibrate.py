"""Thresholds for a built graph, measured on the development corpus's validation split (never on test).

    python model/build.py --calibrate     # runs this on the freshly built file, writes model/calibration.json

The validation set is taken without its same-picture originals (bench/quality/hygiene.py). Two kinds of threshold:

- `fpr_0.01`, `fpr_0.001` (two-image mode): every original against every copy of another original is an unrelated
  pair (about two million); the threshold at a false-positive rate is the similarity at most that share exceeds.
- `duplicates` (album grouping, `image-similarity duplicates`): an album of N pictures has N^2/2 pairs, so 0.1 % of
  them is thousands of wrong pairs at N = 3,000. It is calibrated on every pair of the set's images taken as one
  album (original-copy, original-original and copy-copy pairs of different originals: about 4.4 million) at
  DUPLICATES_FPR, and its spread over random halves of the originals says how stable that estimate is.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.quality.corpus_set import load_clean_set
from bench.quality.methods import OnnxEmbedding
from bench.quality.metrics import album_pair_scores, pair_scores, threshold_at_fpr

FPRS = {"fpr_0.01": 0.01, "fpr_0.001": 0.001}
# One wrong pair in 100,000: about 45 in an album of 3,000 pictures. Above it two pictures are duplicates outright
# (alone, on the validation album with v4: pair precision 0.87 at recall 0.08; 1e-4 gave 0.66 at 0.18); below it,
# down to fpr_0.001, album/duplicates.py asks for mutual nearest neighbours (docs/QUALITY.md has the curve).
DUPLICATES_FPR = 1e-5
HALVES = 10  # random halves of the originals: how far the duplicates threshold moves with the sample


def duplicates_threshold(originals: np.ndarray, copies: np.ndarray, labels: np.ndarray) -> float:
    """The album threshold of a set's vectors (unrounded)."""
    return threshold_at_fpr(album_pair_scores(originals, copies, labels)[1], DUPLICATES_FPR)


def half_spread(originals: np.ndarray, copies: np.ndarray, labels: np.ndarray, seed: int = 0) -> list[float]:
    """The duplicates threshold measured on HALVES random halves of the originals (each with its own copies)."""
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(HALVES):
        half = np.sort(rng.permutation(len(originals))[: len(originals) // 2])
        renumber = np.full(len(originals), -1)
        renumber[half] = np.arange(len(half))
        keep = renumber[labels] >= 0
        found.append(duplicates_threshold(originals[half], copies[keep], renumber[labels[keep]]))
    return found


def calibrate(onnx_path: Path, size: int = 224) -> dict:
    bench = load_clean_set("validation")
    model = OnnxEmbedding("candidate", path=onnx_path, size=size)
    originals, copies = model.embed(bench.originals), model.embed(bench.copies)
    positives, negatives = pair_scores(0.5 + 0.5 * originals @ copies.T, bench.labels)
    thresholds = {key: round(threshold_at_fpr(negatives, fpr), 4) for key, fpr in FPRS.items()}
    thresholds["duplicates"] = round(duplicates_threshold(originals, copies, bench.labels), 4)
    album_positives, album_negatives = album_pair_scores(originals, copies, bench.labels)
    halves = half_spread(originals, copies, bench.labels)
    return {"thresholds": thresholds, "split": "validation", "originals": len(bench.originals),
            "unrelated_pairs": len(negatives), "matching_pairs": len(positives),
            "tpr": {key: round(float((positives > t).mean()), 4) for key, t in thresholds.items() if key in FPRS},
            "duplicates": {"fpr": DUPLICATES_FPR, "unrelated_pairs": len(album_negatives),
                           "matching_pairs": len(album_positives),
                           "unrelated_above": int((album_negatives > thresholds["duplicates"]).sum()),
                           "tpr": round(float((album_positives > thresholds["duplicates"]).mean()), 4),
                           "halves": [round(t, 4) for t in halves]}}
