"""Fixtures for the search tests: stores behind the one protocol, routes over the session's service.

`STORES` names every store the contract suite runs against. A store joins by adding a factory here: it gets a fresh
temporary folder and returns a context manager that opens a `CollectionStore` (and closes its mock backend).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import pytest
from image_similarity.search.api import CollectionRoutes
from image_similarity.search.local_store import LocalStore
from image_similarity.search.store import CollectionStore
from search_aws.moto_s3vectors import moto_s3vectors_store

STORES: dict[str, Callable[[Path], AbstractContextManager[CollectionStore]]] = {
    "local-exact": lambda folder: nullcontext(LocalStore(folder)),
    # The HNSW graph from the first item on: the same contract must hold on the approximate path.
    "local-hnsw": lambda folder: nullcontext(LocalStore(folder, exact_below=0)),
    # Amazon S3 Vectors through moto (its QueryVectors answered by exact cosine: tests/search_aws/moto_s3vectors.py).
    "s3vectors": lambda folder: moto_s3vectors_store(),
}


@pytest.fixture(params=sorted(STORES))
def store(request, tmp_path) -> Iterator[CollectionStore]:
    with STORES[request.param](tmp_path / "store") as opened:
        yield opened


@pytest.fixture
def local_store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture
def routes(service, local_store) -> CollectionRoutes:
    return CollectionRoutes(service, local_store)
