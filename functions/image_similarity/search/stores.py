"""Which store serves the collection routes: Amazon S3 Vectors when a vector bucket is configured (the deployed
`ImageSearch=yes` stack sets IMAGE_SEARCH_VECTOR_BUCKET), else the local store in the data directory."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache

from image_similarity.core.service import ImageSimilarityService, default_service
from image_similarity.search.api import CollectionRoutes
from image_similarity.search.store import CollectionStore

# Set by infra/search.py on the search function only: the stack's vector bucket.
VECTOR_BUCKET_ENV = "IMAGE_SEARCH_VECTOR_BUCKET"
# What the API's mock route answers with ImageSearch=no (infra/search.py keeps the same text; a test compares them).
NOT_DEPLOYED = "Image Search is not deployed on this stack: set its ImageSearch parameter to yes."


def store_from_env(env: dict[str, str] | None = None) -> CollectionStore:
    env = dict(os.environ if env is None else env)
    if bucket := env.get(VECTOR_BUCKET_ENV):
        from image_similarity.search.s3vectors_store import S3VectorsStore

        return S3VectorsStore(bucket)
    from image_similarity.search.local_store import LocalStore, default_data_dir

    return LocalStore(default_data_dir(env))


@lru_cache(maxsize=1)
def default_routes() -> CollectionRoutes:
    """The process-wide routes, built on first use (the store opens then, not at import or start-up)."""
    return CollectionRoutes(default_service(), store_from_env())


def deployed_routes() -> CollectionRoutes | None:
    """The routes of a Lambda function the stack gave a vector bucket, else None: the API's image function, invoked
    directly with a /collections event, has no store (Lambda's home is read-only and its image has no FAISS) and
    answers 404 "not deployed" as the API's mock route does."""
    return default_routes() if os.environ.get(VECTOR_BUCKET_ENV) else None


def routes_factory(service: ImageSimilarityService) -> Callable[[], CollectionRoutes]:
    """Routes over `service`'s model, the store opened by the first collection request."""
    return lru_cache(maxsize=1)(lambda: CollectionRoutes(service, store_from_env()))
