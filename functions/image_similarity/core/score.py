"""The SPEC's similarity score, the one home of the rule for every caller: the API's two-image mode and the album's
duplicate search."""

from __future__ import annotations

import numpy as np


def score(cos: np.ndarray | float) -> np.ndarray:
    """Cosine of unit vectors mapped to [0, 1] as 0.5 + 0.5 * cos, in float64, kept inside [0, 1] against rounding."""
    return np.clip(0.5 + 0.5 * np.asarray(cos, dtype=np.float64), 0.0, 1.0)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The score of two embeddings."""
    return float(score(np.dot(a.astype(np.float64), b.astype(np.float64))))
