"""Which copy of a duplicate group to keep: one documented rule per `--keep` choice.

- largest (default): most pixels, then least compressed (most bytes per pixel), then oldest, then path order;
- oldest / newest: by EXIF capture date, else the file's modification time, then path order;
- path-order: the first path in the sorted listing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

KEEP_RULES = ("largest", "oldest", "newest", "path-order")
DEFAULT_KEEP = "largest"
UNKNOWN_TIME = float("inf")  # a copy with no date at all comes after every dated one, for both date rules


@dataclass(frozen=True)
class Candidate:
    """What the rules look at; `order` is the position in the sorted input listing."""

    order: int
    pixels: int
    bytes: int
    taken: str | None
    modified: float | None

    @property
    def time(self) -> float:
        """Seconds since the epoch of the capture date (read as local time), else of the last modification."""
        if self.taken:
            return datetime.fromisoformat(self.taken).timestamp()
        return self.modified if self.modified is not None else UNKNOWN_TIME

    @property
    def bytes_per_pixel(self) -> float:
        return self.bytes / self.pixels if self.pixels else 0.0


def _known_time(c: Candidate) -> float:
    """Newest first, with undated copies after every dated one."""
    return -c.time if c.time != UNKNOWN_TIME else UNKNOWN_TIME


SORT_KEYS: dict[str, Callable[[Candidate], tuple]] = {
    "largest": lambda c: (-c.pixels, -c.bytes_per_pixel, c.time, c.order),
    "oldest": lambda c: (c.time, c.order),
    "newest": lambda c: (_known_time(c), c.order),
    "path-order": lambda c: (c.order,),
}


def choose(candidates: Sequence[Candidate], rule: str = DEFAULT_KEEP) -> int:
    """The index (into `candidates`) of the copy to keep."""
    if rule not in SORT_KEYS:
        raise ValueError(f"unknown keep rule {rule!r}: choose one of {', '.join(KEEP_RULES)}")
    return min(range(len(candidates)), key=lambda i: SORT_KEYS[rule](candidates[i]))
