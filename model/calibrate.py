"""Thresholds for a built graph, measured on the development corpus's validation split (never on test).

    python model/build.py --calibrate     # runs this on the freshly built file, writes model/calibration.json

Every original of the validation set against every copy of another original is an unrelated pair (over a million);
the threshold at a false-positive rate is the similarity that at most that share of them exceeds.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.quality.corpus_set import load_set
from bench.quality.methods import OnnxEmbedding
from bench.quality.metrics import pair_scores, threshold_at_fpr

FPRS = {"fpr_0.01": 0.01, "fpr_0.001": 0.001}


def calibrate(onnx_path: Path, size: int = 224) -> dict:
    bench = load_set("validation")
    model = OnnxEmbedding("candidate", path=onnx_path, size=size)
    scores = 0.5 + 0.5 * model.embed(bench.originals) @ model.embed(bench.copies).T
    positives, negatives = pair_scores(scores, bench.labels)
    thresholds = {key: round(threshold_at_fpr(negatives, fpr), 4) for key, fpr in FPRS.items()}
    return {"thresholds": thresholds, "split": "validation", "unrelated_pairs": len(negatives),
            "matching_pairs": len(positives),
            "tpr": {key: round(float((positives > t).mean()), 4) for key, t in thresholds.items()}}
