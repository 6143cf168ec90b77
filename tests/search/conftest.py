"""Fixtures for the search tests: stores behind the one protocol, routes over the session's service.

`STORES` names every store the contract suite runs against. A store joins by adding a factory here: it gets a fresh
temporary folder and returns a `CollectionStore` (the S3 Vectors store: a moto backend or a Stubber-backed client).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from image_similarity.search.api import CollectionRoutes
from image_similarity.search.local_store import LocalStore
from image_similarity.search.store import CollectionStore

STORES: dict[str, Callable[[Path], CollectionStore]] = {
    "local-exact": lambda folder: LocalStore(folder),
    # The HNSW graph from the first item on: the same contract must hold on the approximate path.
    "local-hnsw": lambda folder: LocalStore(folder, exact_below=0),
}


@pytest.fixture(params=sorted(STORES))
def store(request, tmp_path) -> CollectionStore:
    return STORES[request.param](tmp_path / "store")


@pytest.fixture
def local_store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture
def routes(service, local_store) -> CollectionRoutes:
    return CollectionRoutes(service, local_store)
