"""Embeddings already computed, keyed by the SHA-256 of the image file's bytes: what makes folder runs resumable.

On disk, one append-only file of fixed-size records (32-byte digest + the float32 vector), in a folder per model
(embeddings of different models are not comparable). Each batch is appended as soon as it is embedded, so a run that
is interrupted loses at most the batch in flight; a torn record at the end is cut off when the file is next opened.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

DIGEST_BYTES = 32


def content_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def default_cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "image-similarity"


class VectorCache:
    """`get(key)` / `add(keys, vectors)`; with `folder=None` it lives in memory for this run only."""

    def __init__(self, folder: Path | None, model: str, dim: int):
        self.dim = dim
        self._vectors: dict[str, np.ndarray] = {}
        self._file: Path | None = None
        self._record = np.dtype([("key", "u1", (DIGEST_BYTES,)), ("vector", "<f4", (dim,))])
        if folder is not None:
            self._file = folder / re.sub(r"[^A-Za-z0-9._-]+", "_", model) / f"vectors-{dim}.bin"
            self._file.parent.mkdir(parents=True, exist_ok=True)
            self._load()

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, key: str) -> np.ndarray | None:
        return self._vectors.get(key)

    def add(self, keys: list[str], vectors: np.ndarray) -> None:
        fresh = [(k, v) for k, v in zip(keys, vectors, strict=True) if k not in self._vectors]
        if not fresh:
            return
        records = np.empty(len(fresh), self._record)
        digests = bytes.fromhex("".join(k for k, _ in fresh))
        records["key"] = np.frombuffer(digests, np.uint8).reshape(-1, DIGEST_BYTES)
        records["vector"] = [v for _, v in fresh]
        if self._file is not None:
            with self._file.open("ab") as f:  # one write per batch: a crash leaves at most one torn record
                f.write(records.tobytes())
        for key, vector in fresh:
            self._vectors[key] = vector.astype(np.float32, copy=False)

    def _load(self) -> None:
        assert self._file is not None
        if not self._file.exists():
            return
        size = self._file.stat().st_size
        whole = size - size % self._record.itemsize
        if whole != size:
            os.truncate(self._file, whole)
        records = np.fromfile(self._file, dtype=self._record)
        self._vectors = {
            key.tobytes().hex(): vector for key, vector in zip(records["key"], records["vector"], strict=True)
        }
