"""Which store serves the collection routes: Amazon S3 Vectors when a vector bucket is configured (the deployed
`ImageSearch=yes` stack sets IMAGE_SEARCH_VECTOR_BUCKET), else the local store in the data directory."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache

from image_similarity.core.service import ImageSimilarityService, default_service
from image_similarity.search.api import CollectionRoutes
from image_similarity.search.store import CollectionStore


def store_from_env(env: dict[str, str] | None = None) -> CollectionStore:
    env = dict(os.environ if env is None else env)
    if bucket := env.get("IMAGE_SEARCH_VECTOR_BUCKET"):
        from image_similarity.search.s3vectors_store import S3VectorsStore

        return S3VectorsStore(bucket)
    from image_similarity.search.local_store import LocalStore, default_data_dir

    return LocalStore(default_data_dir(env))


@lru_cache(maxsize=1)
def default_routes() -> CollectionRoutes:
    """The process-wide routes, built on first use (the store opens then, not at import or start-up)."""
    return CollectionRoutes(default_service(), store_from_env())


def routes_factory(service: ImageSimilarityService) -> Callable[[], CollectionRoutes]:
    """Routes over `service`'s model, the store opened by the first collection request."""
    return lru_cache(maxsize=1)(lambda: CollectionRoutes(service, store_from_env()))
