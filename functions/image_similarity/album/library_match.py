"""Which new pictures `duplicates --against LIBRARY` reports, and with which library picture: one rule over each new
picture's best library match (`library_matches`).

A threshold calibrated on single pairs does not hold for the best of many: a new picture meets every library
picture, and its best of hundreds of look-alikes often passes the 0.1 % threshold. On the validation split that rule
reported a wrong library picture one time in four (precision 0.718, recall 0.645; docs/QUALITY.md, "Against a
library"). The album's margin does not carry over either (its similarity-only reports were 40 % wrong there, with or
without the library picture's own background), but its two other rules do: a score from the certain threshold (one in
100,000 unrelated album pairs), or from the check's floor when the pixel check agrees. Together they reported with
precision 0.958 at recall 0.620 on validation, the album's criterion (the most recall at precision >= 0.95).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from image_similarity.album.duplicates import PairCheck
from image_similarity.core.score import similarity
from image_similarity.core.settings import DUPLICATE_CERTAIN_THRESHOLD, DUPLICATE_CHECK_FLOOR, LIBRARY_MATCH_THRESHOLD

# New pictures scored against the library per block: 4,096 x 100,000 float32 scores = 1.6 GB would be too many.
BLOCK_ELEMENTS = 2**25


@dataclass(frozen=True)
class LibraryMatch:
    row: int  # of the new pictures' vectors
    library_row: int
    score: float
    identical: bool  # the same bytes


def library_matches(
    vectors: np.ndarray, keys: Sequence[str], library_vectors: np.ndarray, library_keys: Sequence[str],
    threshold: float = LIBRARY_MATCH_THRESHOLD, certain: float = DUPLICATE_CERTAIN_THRESHOLD,
    check: PairCheck | None = None, check_floor: float = DUPLICATE_CHECK_FLOOR, block_elements: int = BLOCK_ELEMENTS,
) -> list[LibraryMatch]:
    """The new pictures that match a library picture, in row order. A file with a library file's bytes matches that
    file whatever the vectors say; any other is decided on its best library match. Without `check`: a score >=
    `threshold`. With `check` (rows: new picture i is i, library picture j is len(vectors) + j): a score >= `certain`,
    or >= `check_floor` when the pixels agree, or >= `threshold` when either picture cannot be read now (a vectors file
    names files that may have moved: the check cannot speak, so the score alone does, as it did before the check)."""
    by_key = {key: row for row, key in enumerate(library_keys)}
    found: list[LibraryMatch] = []
    asked: list[LibraryMatch] = []
    block = max(1, block_elements // max(1, len(library_vectors)))
    for start in range(0, len(vectors) if len(library_vectors) else 0, block):
        best = np.argmax(vectors[start:start + block] @ library_vectors.T, axis=1)
        for row, library_row in enumerate(best.tolist(), start):
            identical = keys[row] in by_key
            library_row = by_key.get(keys[row], library_row)
            candidate = LibraryMatch(row, library_row, similarity(vectors[row], library_vectors[library_row]),
                                     identical)
            if identical or candidate.score >= (threshold if check is None else certain):
                found.append(candidate)
            elif check is not None and candidate.score >= min(check_floor, threshold):
                asked.append(candidate)
    if asked:
        pairs = check(np.array([m.row for m in asked]), len(vectors) + np.array([m.library_row for m in asked]))
        found += [m for m, pixels in zip(asked, pairs, strict=True)
                  if (pixels.agrees and m.score >= check_floor) or (not pixels.compared and m.score >= threshold)]
    return sorted(found, key=lambda m: m.row)
