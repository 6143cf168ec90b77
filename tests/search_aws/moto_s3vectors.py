"""An S3VectorsStore on moto's S3 Vectors backend, usable by any test suite (the store contract tests included).

moto 5.2.5 emulates buckets, indexes, tags and PutVectors / GetVectors / ListVectors / DeleteVectors, but not
QueryVectors. `query_from_moto_backend` answers that one call from moto's stored vectors the way the API documents
it: exact nearest neighbours by cosine distance (1 - cos), at most topK (1-100), keys with distance and metadata.
S3 Vectors itself is approximate; an exact answer is what an approximate one aims at.

Use: `with moto_s3vectors_store() as store: ...`, or the `s3vectors_store` fixture of tests/search_aws/conftest.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import numpy as np
from image_similarity.search.s3vectors_store import S3VectorsStore
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3vectors.exceptions import IndexNotFound
from moto.s3vectors.models import s3vectors_backends

REGION = "us-east-1"
BUCKET = "test-image-search"
MAX_TOP_K = 100  # "Top-K results per QueryVectors request: Up to 100" (S3 Vectors limitations)


class _Answer:
    """The little of an HTTP response botocore reads when a before-call handler answers for the service."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}


def _error(status: int, code: str, message: str):
    return _Answer(status), {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }


def query_from_moto_backend(params, **_kwargs):
    """before-call handler for s3vectors QueryVectors, reading moto's backend."""
    request = json.loads(params["body"])
    top_k = request["topK"]
    if not 1 <= top_k <= MAX_TOP_K:
        return _error(400, "ValidationException", f"topK must be between 1 and {MAX_TOP_K}")
    backend = s3vectors_backends[DEFAULT_ACCOUNT_ID]["aws"]  # one backend per partition
    try:
        index = backend.get_index(request.get("vectorBucketName"), request.get("indexName"), request.get("indexArn"))
    except IndexNotFound:
        return _error(404, "NotFoundException", "The specified index could not be found")
    query = np.asarray(request["queryVector"]["float32"], dtype=np.float64)
    if query.shape != (index.dimension,):
        return _error(400, "ValidationException", f"query vector must have length {index.dimension}")
    hits = []
    for vector in index.vectors.values():
        stored = np.asarray(vector.data["float32"], dtype=np.float64)
        cos = float(stored @ query / (np.linalg.norm(stored) * np.linalg.norm(query)))
        hit = {"key": vector.key, "distance": 1.0 - cos}
        if request.get("returnMetadata"):
            hit["metadata"] = vector.metadata
        hits.append(hit)
    hits.sort(key=lambda hit: hit["distance"])
    answer = {"vectors": hits[:top_k], "distanceMetric": index.distance_metric,
              "ResponseMetadata": {"HTTPStatusCode": 200}}
    if not request.get("returnDistance"):
        for hit in answer["vectors"]:
            del hit["distance"]
    return _Answer(200), answer


@contextmanager
def moto_s3vectors_client() -> Iterator:
    """An s3vectors client on moto with the test bucket created; never reaches AWS (fake credentials)."""
    with mock_aws():
        client = boto3.client(
            "s3vectors", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        client.meta.events.register("before-call.s3vectors.QueryVectors", query_from_moto_backend)
        client.create_vector_bucket(vectorBucketName=BUCKET)
        yield client


@contextmanager
def moto_s3vectors_store() -> Iterator[S3VectorsStore]:
    with moto_s3vectors_client() as client:
        yield S3VectorsStore(BUCKET, client=client)
