"""Embed many images: read and hash in parallel, reuse cached vectors, embed the rest in batches, and record each
unreadable image with the reason instead of stopping. The model runs locally or behind the deployed API."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from image_similarity.album.image_files import is_url
from image_similarity.album.photo_decode import for_api, photo_to_model_input
from image_similarity.album.vector_cache import VectorCache, content_key
from image_similarity.client import ImageSimilarityClient, ImageSimilarityError
from image_similarity.core.errors import RequestError
from image_similarity.core.service import ImageSimilarityService
from image_similarity.core.settings import cpu_count
from image_similarity.sources.image_source import ImageSource

DEFAULT_BATCH_SIZE = 32
API_EMBEDDING_DIM = 512  # the API contract: `result` is 512 floats
REMOTE_IN_FLIGHT = 8


@dataclass(frozen=True)
class Embedded:
    """One input's outcome: a vector, or the reason it could not be embedded."""

    location: str
    key: str | None = None
    vector: np.ndarray | None = None
    error: str | None = None
    cached: bool = False


@dataclass(frozen=True)
class EmbedRun:
    """All inputs' outcomes; `vectors` holds the embedded ones' rows in input order."""

    locations: list[str]
    keys: list[str]
    vectors: np.ndarray
    failures: list[tuple[str, str]]
    cached: int


class Backend(Protocol):
    """Turns image bytes into vectors (or error messages, one per image), using `pool` for parallel work."""

    model: str  # names the embedding space: a cache never mixes two
    dim: int

    @property
    def version(self) -> str: ...  # the model version, for reports

    def embed(self, images: list[bytes], pool: ThreadPoolExecutor) -> list[np.ndarray | str]: ...


class LocalBackend:
    """The in-process model: local photos (album.photo_decode) decoded on all cores (Pillow releases the GIL), one
    ONNX batch per call."""

    def __init__(self, service: ImageSimilarityService):
        self.service = service
        self.model = f"local-{service.model_version}"
        self.dim = service.embedder.info.dim

    @property
    def version(self) -> str:
        return self.service.model_version

    def embed(self, images: list[bytes], pool: ThreadPoolExecutor) -> list[np.ndarray | str]:
        decoded: list[np.ndarray | str] = list(pool.map(self._decode, images))
        ready = [i for i, d in enumerate(decoded) if isinstance(d, np.ndarray)]
        if ready:
            vectors = self.service.embedder.embed(np.stack([decoded[i] for i in ready]))
            for i, vector in zip(ready, vectors, strict=True):
                decoded[i] = vector
        return decoded

    def _decode(self, data: bytes) -> np.ndarray | str:
        try:
            return photo_to_model_input(data, self.service.embedder.input_size)
        except RequestError as exc:
            return exc.message


class RemoteBackend:
    """The deployed API, one request per image, several in flight at once."""

    def __init__(self, client: ImageSimilarityClient):
        self.client = client
        self.model = f"remote-{hashlib.sha256(client.url.encode()).hexdigest()[:16]}"
        self.dim = API_EMBEDDING_DIM

    @property
    def version(self) -> str:
        return self.client.model_version or "unknown"

    def embed(self, images: list[bytes], pool: ThreadPoolExecutor) -> list[np.ndarray | str]:
        return list(pool.map(self._one, images))

    def _one(self, data: bytes) -> np.ndarray | str:
        """Camera-size or non-API formats are re-encoded here first: the API keeps its own contract."""
        try:
            return self.client.embed(for_api(data))
        except (ImageSimilarityError, RequestError) as exc:
            return exc.message


class ImageReader:
    """A local path, or an http(s)/s3 URL fetched under the same rules as the API's `url` field."""

    def __init__(self, source: ImageSource):
        self.source = source

    def __call__(self, location: str) -> bytes:
        if is_url(location):
            return self.source.read("url", location)
        return self.read_file(location)

    @staticmethod
    def read_file(location: str) -> bytes:
        try:
            return Path(location).read_bytes()
        except OSError as exc:
            raise RequestError(400, f"cannot read {location}: {exc.strerror}") from exc


def default_workers(remote: bool) -> int:
    """Local: one decoding thread per core. Remote: requests mostly wait on the network, so keep more in flight."""
    if remote:
        return REMOTE_IN_FLIGHT
    return cpu_count()


def iter_embeddings(
    locations: list[str],
    backend: Backend,
    read: Callable[[str], bytes],
    cache: VectorCache,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = 1,
) -> Iterator[Embedded]:
    """Each location's outcome, in input order, a batch at a time; new vectors go into `cache` batch by batch."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(locations), batch_size):
            batch = locations[start : start + batch_size]
            yield from _embed_batch(batch, backend, read, cache, pool)


def _embed_batch(
    batch: list[str], backend: Backend, read: Callable[[str], bytes], cache: VectorCache, pool: ThreadPoolExecutor
) -> list[Embedded]:
    loaded = list(pool.map(lambda location: _load(location, read), batch))
    todo: dict[str, bytes] = {}  # content key -> bytes: identical files in one batch are embedded once
    for item, data in loaded:
        if item.key and cache.get(item.key) is None:
            todo.setdefault(item.key, data)
    errors: dict[str, str] = {}
    if todo:
        results = backend.embed(list(todo.values()), pool)
        done = [(key, r) for key, r in zip(todo, results, strict=True) if isinstance(r, np.ndarray)]
        errors = {key: r for key, r in zip(todo, results, strict=True) if isinstance(r, str)}
        if done:
            cache.add([key for key, _ in done], np.stack([vector for _, vector in done]))
    outcomes = []
    for item, _ in loaded:
        if item.error or item.key is None:
            outcomes.append(item)
        elif item.key in errors:
            outcomes.append(Embedded(item.location, item.key, error=errors[item.key]))
        else:
            outcomes.append(Embedded(item.location, item.key, cache.get(item.key), cached=item.key not in todo))
    return outcomes


def _load(location: str, read: Callable[[str], bytes]) -> tuple[Embedded, bytes]:
    try:
        data = read(location)
    except RequestError as exc:
        return Embedded(location, error=exc.message), b""
    return Embedded(location, content_key(data)), data


def collect(outcomes: Iterator[Embedded], dim: int, on_each: Callable[[Embedded], None] | None = None) -> EmbedRun:
    """Gather `iter_embeddings` into one matrix; `on_each` sees every outcome as it arrives (progress, logs)."""
    locations, keys, vectors, failures, cached = [], [], [], [], 0
    for outcome in outcomes:
        if on_each:
            on_each(outcome)
        if outcome.vector is None:
            failures.append((outcome.location, outcome.error or "not embedded"))
            continue
        locations.append(outcome.location)
        keys.append(outcome.key)
        vectors.append(outcome.vector)
        cached += outcome.cached
    matrix = np.stack(vectors).astype(np.float32, copy=False) if vectors else np.zeros((0, dim), np.float32)
    return EmbedRun(locations, keys, matrix, failures, cached)
