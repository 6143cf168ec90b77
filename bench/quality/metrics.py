"""Retrieval metrics over one score matrix: rows are originals, columns are transformed copies.

`scores[i, j]` is the similarity of original i and copy j (higher = more alike); `labels[j]` is the original that
copy j was made from. Every metric can be restricted to a subset of the copies (one transform kind).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    hits = relevant[order]
    if not hits.any():
        return float("nan")
    ranks = np.flatnonzero(hits) + 1
    return float(np.mean(np.arange(1, len(ranks) + 1) / ranks))


def mean_average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Each original queries all the copies; its own copies are the relevant ones."""
    return float(np.nanmean([average_precision(scores[i], labels == i) for i in range(scores.shape[0])]))


def top1(scores: np.ndarray, labels: np.ndarray) -> float:
    """Each copy queries the originals: how often its own original comes first."""
    return float(np.mean(scores.argmax(axis=0) == labels))


def pair_scores(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(matching, unrelated) scores over all original-copy pairs."""
    same = np.arange(scores.shape[0])[:, None] == labels[None, :]
    return scores[same], scores[~same]


def roc_auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Probability that a matching pair outscores an unrelated one (ties count half: hashes give many)."""
    ranks = rankdata(np.concatenate([positives, negatives]))
    n_pos, n_neg = len(positives), len(negatives)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def threshold_at_fpr(negatives: np.ndarray, fpr: float) -> float:
    """The lowest score that at most `fpr` of unrelated pairs reach: call "same image" at score > threshold."""
    ordered = np.sort(negatives)[::-1]
    allowed = int(np.floor(fpr * len(ordered)))
    return float(ordered[allowed]) if allowed < len(ordered) else float(ordered[-1])


def tpr_at_fpr(positives: np.ndarray, negatives: np.ndarray, fpr: float) -> float:
    return float(np.mean(positives > threshold_at_fpr(negatives, fpr)))


def summarise(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    positives, negatives = pair_scores(scores, labels)
    return {
        "mAP": mean_average_precision(scores, labels),
        "top1": top1(scores, labels),
        "auc": roc_auc(positives, negatives),
        "tpr@1%": tpr_at_fpr(positives, negatives, 0.01),
        "tpr@0.1%": tpr_at_fpr(positives, negatives, 0.001),
    }
