"""What every collection store provides (local and S3 Vectors): the routes and the CLI only talk to this protocol.

Vectors reach a store already L2-normalised float32 rows of the model's dimension; similarities leave it on the
API's `0.5 + 0.5 * cos` scale. Stores raise `RequestError` (404 unknown collection or id, 409 model-version mismatch)
so every adapter answers the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from image_similarity.core.errors import RequestError


def not_found(name: str) -> RequestError:
    """Every store's 404 for an unknown collection."""
    return RequestError(404, f"no collection named {name}: add items to create it (POST /collections/{name}/items)")


def item_not_found(name: str) -> RequestError:
    """Every store's 404 for an unknown id. The id stays out: messages are logged, and ids may be paths or keys."""
    return RequestError(404, f"collection {name} has no item with that id")


def version_mismatch(name: str, built_with: str, given: str) -> RequestError:
    """Every store's 409: the collection holds another model's vectors."""
    return RequestError(409, f"collection {name} holds vectors of model {built_with}, not {given}: rebuild it with "
                             f"this model (DELETE /collections/{name}, then add its images again) or use another name")


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    count: int
    model_version: str


@dataclass(frozen=True)
class Match:
    id: str
    similarity: float
    metadata: dict[str, Any] = field(default_factory=dict)


class CollectionStore(Protocol):
    def describe(self, name: str) -> CollectionInfo:
        """404 when the collection does not exist."""

    def upsert(self, name: str, ids: list[str], vectors: np.ndarray, metadata: list[dict[str, Any]],
               model_version: str) -> int:
        """Create the collection on first use; replace items with the same id. 409 on another model version.
        Returns the number of items written. Acknowledged only once durable."""

    def search(self, name: str, vector: np.ndarray, k: int, min_similarity: float,
               model_version: str) -> list[Match]:
        """Best first, at most k, each with similarity >= min_similarity. 404 unknown, 409 other model version."""

    def delete_item(self, name: str, item_id: str) -> None:
        """404 when the collection or the id does not exist."""

    def delete_collection(self, name: str) -> None:
        """404 when the collection does not exist."""
