"""The batch worker: a batch of S3 objects or local files in, one row per input out, never an exception for a bad
image. Reads and decodes run on a thread pool, overlapping the network, while the model embeds the batch before.

Memory stays bounded: at most `model_batch` + `lookahead` model inputs (150 KB each) are alive, at most `readers`
downloads are in memory at once (each capped by the fetch byte limit), at most `decoders` images are decoded at once
(decoding is where a large PNG or BMP briefly takes hundreds of MB), and ONNX Runtime's working memory grows with
`model_batch` (about 16 MB per image: docs/BATCH.md, "Worker speed").
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

from image_similarity.core.embedder import Embedder
from image_similarity.core.errors import RequestError
from image_similarity.core.images import open_checked, to_model_input
from image_similarity.core.settings import FetchSettings
from image_similarity.sources.s3_fetch import fetch_s3

# Catalogue and archive images are often camera-sized; the HTTP API's 4,096 px limit (SPEC) guards request latency,
# which a batch does not have. 10,000 px covers 60-megapixel cameras; the decoders semaphore bounds the memory.
BATCH_MAX_IMAGE_SIDE = 10_000
# Larger model batches are no faster per image on CPU (more CPU time from 32 up) and ONNX Runtime's working memory
# grows ~16 MB per image: 8 is at the minimum of both (docs/BATCH.md, "Worker speed"; make bench-batch).
DEFAULT_MODEL_BATCH = 8
# Downloads mostly wait on S3, so more of them are in flight than there are CPUs.
DEFAULT_READERS = 8


@dataclass(frozen=True)
class Item:
    """One input: an S3 object (`bucket` set) or a local file (`key` is its path). `etag` and `version_id` come
    from the listing and identify the object's content, so a resumed run knows what it has already embedded."""

    key: str
    bucket: str | None = None
    etag: str | None = None
    version_id: str | None = None

    @property
    def is_folder_marker(self) -> bool:
        """The empty `photos/` objects the S3 console creates for folders: not images, not worth an error row."""
        return self.bucket is not None and self.key.endswith("/")

    @property
    def identity(self) -> tuple[str | None, str, str | None]:
        return self.bucket, self.key, self.etag


@dataclass(frozen=True)
class Row:
    """One output row: an embedding, or the reason there is none (`error`)."""

    item: Item
    model_version: str
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    embedding: np.ndarray | None = None
    error: str | None = None


@dataclass(frozen=True)
class _Decoded:
    size: int
    width: int
    height: int
    pixels: np.ndarray


class ItemReader:
    """S3 objects under the API's S3 rules and error messages (`fetch_s3`); local files from disk."""

    def __init__(self, settings: FetchSettings | None = None, s3_client=None):
        self.settings = settings or FetchSettings()
        self.s3_client = s3_client

    def __call__(self, item: Item) -> bytes:
        if item.bucket is not None:
            # Quoted so that keys holding '?', '#' or '%' survive the URL form fetch_s3 parses and unquotes.
            return fetch_s3(f"s3://{item.bucket}/{quote(item.key, safe='/')}", self.settings, self.s3_client)
        try:
            return Path(item.key).read_bytes()
        except OSError as exc:
            raise RequestError(400, f"cannot read {item.key}: {exc.strerror}") from exc


class Worker:
    """`embed(items)` -> one `Row` per item, in order (folder markers dropped)."""

    def __init__(
        self,
        embedder: Embedder,
        read: Callable[[Item], bytes],
        *,
        model_batch: int = DEFAULT_MODEL_BATCH,
        readers: int = DEFAULT_READERS,
        decoders: int = 1,
        max_side: int = BATCH_MAX_IMAGE_SIDE,
    ):
        if model_batch < 1 or readers < 1 or decoders < 1:
            raise ValueError("model_batch, readers and decoders must be at least 1")
        self.embedder = embedder
        self.read = read
        self.model_batch = model_batch
        self.readers = readers
        self.decoders = decoders
        self.max_side = max_side
        self._decoding = threading.BoundedSemaphore(decoders)

    @property
    def model_version(self) -> str:
        return self.embedder.info.version

    def embed(self, items: Iterable[Item]) -> list[Row]:
        return list(self.iter_rows(items))

    def iter_rows(self, items: Iterable[Item]) -> Iterator[Row]:
        """Rows a model batch at a time, in input order. Up to `lookahead` further items are read and decoded while
        the model embeds a batch: at least one more batch, and at least one item per reader thread (with a batch of
        one, a single prefetched image could not hide an S3 round trip)."""
        lookahead = max(self.model_batch, self.readers)
        with ThreadPoolExecutor(max_workers=self.readers, thread_name_prefix="batch-read") as pool:
            pending: deque[tuple[Item, Future]] = deque()
            for item in items:
                if item.is_folder_marker:
                    continue
                pending.append((item, pool.submit(self._load, item)))
                if len(pending) >= self.model_batch + lookahead:
                    yield from self._finish([pending.popleft() for _ in range(self.model_batch)])
            while pending:
                yield from self._finish([pending.popleft() for _ in range(min(self.model_batch, len(pending)))])

    def _load(self, item: Item) -> _Decoded | str:
        try:
            data = self.read(item)
            with self._decoding:
                width, height = open_checked(data, self.max_side).size
                pixels = to_model_input(data, self.embedder.input_size, self.max_side)
        except RequestError as exc:
            return exc.message
        return _Decoded(len(data), width, height, pixels)

    def _finish(self, pending: list[tuple[Item, Future]]) -> list[Row]:
        loaded = [(item, future.result()) for item, future in pending]
        ready = [d.pixels for _, d in loaded if isinstance(d, _Decoded)]
        vectors = iter(self.embedder.embed(np.stack(ready)) if ready else ())
        version = self.model_version
        rows = []
        for item, d in loaded:
            if isinstance(d, _Decoded):
                rows.append(Row(item, version, d.size, d.width, d.height, next(vectors).astype(np.float32)))
            else:
                rows.append(Row(item, version, error=d))
        return rows

