"""How a folder run turns images into vectors: the backend, the reader, the cache and the batch settings in one
object, so the command line and users' scripts embed the same way (and through the same cache)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from image_similarity.album.bulk_embed import (
    DEFAULT_BATCH_SIZE,
    Backend,
    Embedded,
    EmbedRun,
    ImageReader,
    LocalBackend,
    collect,
    default_workers,
    iter_embeddings,
)
from image_similarity.album.image_files import find_images
from image_similarity.album.vector_cache import VectorCache, default_cache_root
from image_similarity.core.service import default_service


@dataclass
class Embedding:
    """`run(locations)` embeds, reusing and filling `cache`; `on_each` sees each outcome (progress, logging)."""

    backend: Backend
    read: Callable[[str], bytes]
    cache: VectorCache
    batch_size: int = DEFAULT_BATCH_SIZE
    workers: int = 0
    on_each: Callable[[Embedded], None] | None = None

    @classmethod
    def local(cls, cache_dir: Path | str | None = None, persistent: bool = True, **options) -> Embedding:
        """The model in this process (built once per process). Vectors are cached in `cache_dir` (default: the
        user's cache folder, shared with the command line) unless `persistent` is False."""
        service = default_service()
        backend = LocalBackend(service)
        folder = (Path(cache_dir) if cache_dir else default_cache_root()) if persistent else None
        return cls(backend, ImageReader(service.source), VectorCache(folder, backend.model, backend.dim), **options)

    def run(self, locations: list[str]) -> EmbedRun:
        workers = self.workers or default_workers(remote=not isinstance(self.backend, LocalBackend))
        outcomes = iter_embeddings(locations, self.backend, self.read, self.cache, self.batch_size, workers)
        return collect(outcomes, self.backend.dim, self.on_each)


def embed_folder(*folders: str | Path, cache_dir: Path | str | None = None, persistent: bool = True) -> EmbedRun:
    """Embed every image under `folders` (walked recursively) with the local model; cached vectors are reused.

    Returns an EmbedRun: `locations[i]` is the path of `vectors[i]`, `failures` the (path, reason) of files skipped.
    """
    return Embedding.local(cache_dir, persistent).run(find_images([str(Path(f).expanduser()) for f in folders]))
