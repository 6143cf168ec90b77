"""The collection store on Amazon S3 Vectors: one vector index per collection in one vector bucket.

Choices, with the documentation they rest on (docs/SEARCH_AWS.md has the sources):
- Each index is cosine, float32, of the model's dimension, created on first use. S3 Vectors' cosine distance is
  1 - cos, so the API's similarity 0.5 + 0.5 * cos is 1 - distance / 2.
- The model version is a tag of the index, set by CreateIndex itself: it exists exactly when the index does (no window
  in which another writer could see an index without a version), and it costs no vector, key or metadata slot.
- An item's metadata is stored as one JSON string under one non-filterable key: any small JSON object (nested,
  nulls) comes back exactly, and it counts against the 40 KB per-vector total, not the 2 KB filterable cap.
- S3 Vectors has no count: `describe` lists the keys (1,000 per page, in parallel segments).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import numpy as np
from botocore.config import Config
from botocore.exceptions import ClientError

from image_similarity.core.errors import RequestError
from image_similarity.search.store import CollectionInfo, Match, item_not_found, not_found, version_mismatch

MODEL_VERSION_TAG = "image-similarity:model-version"
METADATA_KEY = "metadata"
DISTANCE_METRIC = "cosine"
# S3 Vectors' page size for ListVectors and its most parallel segments.
_LIST_PAGE = 1000
_LIST_SEGMENTS = 16
# Throttled calls (429) are retried with backoff before the store answers 429 itself.
_CLIENT_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 6})


def similarity_from_distance(distance: float) -> float:
    """S3 Vectors' cosine distance is 1 - cos; the API's scale is 0.5 + 0.5 * cos."""
    return 1.0 - distance / 2.0


class S3VectorsStore:
    """CollectionStore on the vector bucket `bucket_name`. `client`: an `s3vectors` boto3 client (tests pass one)."""

    def __init__(self, bucket_name: str, client=None) -> None:
        self._bucket = bucket_name
        self._client = client if client is not None else boto3.client("s3vectors", config=_CLIENT_CONFIG)
        self._bucket_arn: str | None = None

    # --- CollectionStore -------------------------------------------------------------------------------------------

    def describe(self, name: str) -> CollectionInfo:
        version = self._model_version(name)
        return CollectionInfo(name=name, count=self._count(name), model_version=version)

    def upsert(self, name: str, ids: list[str], vectors: np.ndarray, metadata: list[dict[str, Any]],
               model_version: str) -> int:
        try:
            stored_version = self._model_version(name)
        except RequestError as error:
            if error.status != 404:
                raise
            stored_version = self._create_index(name, int(vectors.shape[1]), model_version)
        _check_version(name, stored_version, model_version)
        # An id repeated in one request is written once, the last one winning, as in every store; S3 Vectors is
        # not asked to settle duplicate keys within one PutVectors call.
        by_id = {
            item_id: {"key": item_id, "data": {"float32": vector.astype(np.float32).tolist()},
                      "metadata": {METADATA_KEY: json.dumps(item_metadata, separators=(",", ":"))}}
            for item_id, vector, item_metadata in zip(ids, vectors, metadata, strict=True)
        }
        records = list(by_id.values())
        # PutVectors takes at most 500 vectors, the API's own item limit; larger calls are split all the same.
        for start in range(0, len(records), 500):
            self._call("put_vectors", name, indexName=name, vectors=records[start:start + 500])
        return len(records)

    def search(self, name: str, vector: np.ndarray, k: int, min_similarity: float,
               model_version: str) -> list[Match]:
        _check_version(name, self._model_version(name), model_version)
        answer = self._call(
            "query_vectors", name, indexName=name, topK=k,
            queryVector={"float32": np.asarray(vector, dtype=np.float32).tolist()},
            returnDistance=True, returnMetadata=True,
        )
        matches = [
            Match(id=hit["key"], similarity=similarity_from_distance(hit["distance"]),
                  metadata=_metadata(hit.get("metadata")))
            for hit in answer.get("vectors", [])
        ]
        matches = [match for match in matches if match.similarity >= min_similarity]
        return sorted(matches, key=lambda match: (-match.similarity, match.id))[:k]

    def delete_item(self, name: str, item_id: str) -> None:
        # DeleteVectors succeeds for absent keys, so ask first: the contract answers 404 for an unknown id.
        found = self._call("get_vectors", name, indexName=name, keys=[item_id]).get("vectors", [])
        if not found:
            raise item_not_found(name)
        self._call("delete_vectors", name, indexName=name, keys=[item_id])

    def delete_collection(self, name: str) -> None:
        self._call("get_index", name, indexName=name)
        self._call("delete_index", name, indexName=name)

    # --- S3 Vectors ------------------------------------------------------------------------------------------------

    def _model_version(self, name: str) -> str:
        tags = self._call("list_tags_for_resource", name, resourceArn=self._index_arn(name)).get("tags", {})
        return tags.get(MODEL_VERSION_TAG, "")

    def _create_index(self, name: str, dimension: int, model_version: str) -> str:
        """Create the collection's index with its version tag; a concurrent creator may win, then its tag counts."""
        try:
            self._client.create_index(
                vectorBucketName=self._bucket, indexName=name, dataType="float32", dimension=dimension,
                distanceMetric=DISTANCE_METRIC,
                metadataConfiguration={"nonFilterableMetadataKeys": [METADATA_KEY]},
                tags={MODEL_VERSION_TAG: model_version},
            )
        except ClientError as error:
            if _code(error) != "ConflictException":
                raise _translate(error, name) from error
            return self._model_version(name)
        return model_version

    def _count(self, name: str) -> int:
        """One page answers a small collection; a larger one is listed in parallel segments."""
        first = self._list_page(name, {})
        if not first.get("nextToken"):
            return len(first.get("vectors", []))

        def count_segment(segment: int) -> int:
            total, token = 0, None
            while True:
                options = {"segmentCount": _LIST_SEGMENTS, "segmentIndex": segment}
                page = self._list_page(name, {**options, **({"nextToken": token} if token else {})})
                total += len(page.get("vectors", []))
                token = page.get("nextToken")
                if not token:
                    return total

        with ThreadPoolExecutor(max_workers=_LIST_SEGMENTS) as pool:
            return sum(pool.map(count_segment, range(_LIST_SEGMENTS)))

    def _list_page(self, name: str, options: dict) -> dict:
        return self._call("list_vectors", name, indexName=name, maxResults=_LIST_PAGE, returnData=False,
                          returnMetadata=False, **options)

    def _index_arn(self, name: str) -> str:
        if self._bucket_arn is None:
            # The bucket's ARN never changes; asking once spares building it from account, region and partition.
            self._bucket_arn = self._client.get_vector_bucket(vectorBucketName=self._bucket)["vectorBucket"][
                "vectorBucketArn"]
        return f"{self._bucket_arn}/index/{name}"

    def _call(self, operation: str, name: str, **parameters) -> dict:
        """One S3 Vectors call on the bucket, its failures turned into the contract's answers."""
        if operation != "list_tags_for_resource":
            parameters["vectorBucketName"] = self._bucket
        try:
            return getattr(self._client, operation)(**parameters)
        except ClientError as error:
            raise _translate(error, name) from error


def _check_version(name: str, stored: str, requested: str) -> None:
    if stored != requested:
        raise version_mismatch(name, stored, requested)


def _metadata(stored: dict | None) -> dict[str, Any]:
    text = (stored or {}).get(METADATA_KEY)
    return json.loads(text) if text else {}


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _translate(error: ClientError, name: str) -> Exception:
    code = _code(error)
    if code in ("NotFoundException", "ResourceNotFoundException"):
        return not_found(name)
    if code in ("TooManyRequestsException", "ThrottlingException"):
        return RequestError(429, "too many requests to the vector store right now: retry in a few seconds")
    return error
