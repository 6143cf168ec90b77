"""S3VectorsStore against moto's S3 Vectors backend (QueryVectors answered from moto's data, see moto_s3vectors.py),
and its error paths against botocore's Stubber."""

from __future__ import annotations

import json

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from image_similarity.core.errors import RequestError
from image_similarity.search.s3vectors_store import (
    METADATA_KEY,
    MODEL_VERSION_TAG,
    S3VectorsStore,
    similarity_from_distance,
)
from search_aws.moto_s3vectors import BUCKET, moto_s3vectors_client

DIM = 512
VERSION = "model-v1"


def unit_vectors(count: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def add(store, name: str, vectors: np.ndarray, ids=None, metadata=None, version: str = VERSION) -> int:
    ids = ids or [f"item-{i}" for i in range(len(vectors))]
    metadata = metadata or [{"n": i} for i in range(len(vectors))]
    return store.upsert(name, ids, vectors, metadata, version)


def test_the_first_upsert_creates_a_cosine_index_of_the_vectors_dimension_tagged_with_the_model_version():
    with moto_s3vectors_client() as client:
        store = S3VectorsStore(BUCKET, client=client)
        assert add(store, "products", unit_vectors(3)) == 3
        index = client.get_index(vectorBucketName=BUCKET, indexName="products")["index"]
        assert (index["dimension"], index["distanceMetric"], index["dataType"]) == (DIM, "cosine", "float32")
        tags = client.list_tags_for_resource(resourceArn=index["indexArn"])["tags"]
        assert tags == {MODEL_VERSION_TAG: VERSION}


def test_describe_counts_items_and_reports_the_model_version(s3vectors_store):
    add(s3vectors_store, "album", unit_vectors(7))
    info = s3vectors_store.describe("album")
    assert (info.name, info.count, info.model_version) == ("album", 7, VERSION)


def test_upsert_replaces_items_with_the_same_id(s3vectors_store):
    vectors = unit_vectors(2)
    add(s3vectors_store, "album", vectors, ids=["a", "b"], metadata=[{"v": 1}, {"v": 1}])
    add(s3vectors_store, "album", vectors[::-1], ids=["a", "c"], metadata=[{"v": 2}, {"v": 2}])
    assert s3vectors_store.describe("album").count == 3
    best = s3vectors_store.search("album", vectors[1], 1, 0.0, VERSION)[0]
    assert (best.id, best.metadata) == ("a", {"v": 2})


def test_search_returns_best_first_on_the_pair_mode_scale(s3vectors_store):
    base = unit_vectors(1, seed=1)[0]
    orthogonal = unit_vectors(1, seed=2)[0]
    orthogonal = orthogonal - (orthogonal @ base) * base
    orthogonal /= np.linalg.norm(orthogonal)
    add(s3vectors_store, "cat", np.stack([base, orthogonal, -base]), ids=["same", "orthogonal", "opposite"])
    matches = s3vectors_store.search("cat", base, 3, 0.0, VERSION)
    assert [m.id for m in matches] == ["same", "orthogonal", "opposite"]
    # 0.5 + 0.5 * cos: 1 for the same direction, 0.5 for orthogonal, 0 for opposite (float32 data).
    assert [m.similarity for m in matches] == pytest.approx([1.0, 0.5, 0.0], abs=1e-5)


def test_search_keeps_at_most_k_matches_at_or_above_min_similarity(s3vectors_store):
    vectors = unit_vectors(20, seed=3)
    add(s3vectors_store, "many", vectors)
    query = vectors[0]
    expected = sorted(((0.5 + 0.5 * float(v @ query), f"item-{i}") for i, v in enumerate(vectors)), reverse=True)
    assert [m.id for m in s3vectors_store.search("many", query, 5, 0.0, VERSION)] == [i for _, i in expected[:5]]
    threshold = expected[3][0] - 1e-4  # exactly the four best pass
    matches = s3vectors_store.search("many", query, 10, threshold, VERSION)
    assert [m.id for m in matches] == [i for _, i in expected[:4]]
    assert all(m.similarity >= threshold for m in matches)


def test_metadata_comes_back_exactly_as_any_small_json_object(s3vectors_store):
    metadata = {"sku": "A-1", "price": 9.5, "tags": ["red", None], "nested": {"ok": True}, "empty": {}}
    vector = unit_vectors(1)
    add(s3vectors_store, "shop", vector, ids=["a"], metadata=[metadata])
    assert s3vectors_store.search("shop", vector[0], 1, 0.0, VERSION)[0].metadata == metadata


def test_metadata_is_one_non_filterable_key_so_the_2_kb_filterable_cap_does_not_apply():
    with moto_s3vectors_client() as client:
        created = []
        # moto keeps no metadata configuration, so read what the store asked CreateIndex for.
        client.meta.events.register("provide-client-params.s3vectors.CreateIndex",
                                    lambda params, **_: created.append(params))
        add(S3VectorsStore(BUCKET, client=client), "shop", unit_vectors(1), ids=["a"], metadata=[{"k": "v"}])
        assert created[0]["metadataConfiguration"] == {"nonFilterableMetadataKeys": [METADATA_KEY]}
        stored = client.get_vectors(vectorBucketName=BUCKET, indexName="shop", keys=["a"], returnMetadata=True)
        assert stored["vectors"][0]["metadata"] == {METADATA_KEY: json.dumps({"k": "v"}, separators=(",", ":"))}


def test_another_model_version_is_refused_with_409_saying_how_to_rebuild(s3vectors_store):
    add(s3vectors_store, "album", unit_vectors(2))
    with pytest.raises(RequestError) as add_error:
        add(s3vectors_store, "album", unit_vectors(1), version="model-v2")
    with pytest.raises(RequestError) as search_error:
        s3vectors_store.search("album", unit_vectors(1)[0], 3, 0.0, "model-v2")
    for error in (add_error.value, search_error.value):
        assert error.status == 409
        assert "model-v1" in error.message and "model-v2" in error.message
        assert "DELETE /collections/album" in error.message
    assert s3vectors_store.describe("album").count == 2


@pytest.mark.parametrize(
    "operation",
    [
        lambda store: store.describe("nothing"),
        lambda store: store.search("nothing", unit_vectors(1)[0], 3, 0.0, VERSION),
        lambda store: store.delete_item("nothing", "a"),
        lambda store: store.delete_collection("nothing"),
    ],
    ids=["describe", "search", "delete_item", "delete_collection"],
)
def test_an_unknown_collection_is_404(s3vectors_store, operation):
    with pytest.raises(RequestError) as error:
        operation(s3vectors_store)
    assert error.value.status == 404
    assert "nothing" in error.value.message


def test_delete_item_removes_it_and_an_unknown_id_is_404(s3vectors_store):
    vectors = unit_vectors(2)
    add(s3vectors_store, "album", vectors, ids=["a", "b"])
    s3vectors_store.delete_item("album", "a")
    assert s3vectors_store.describe("album").count == 1
    assert [m.id for m in s3vectors_store.search("album", vectors[0], 5, 0.0, VERSION)] == ["b"]
    with pytest.raises(RequestError) as error:
        s3vectors_store.delete_item("album", "a")
    # The id stays out of the message (messages are logged; ids may be object keys), the collection is named.
    assert error.value.status == 404 and "'a'" not in error.value.message and "album" in error.value.message


def test_delete_collection_removes_it_and_a_new_one_may_use_another_model_version(s3vectors_store):
    add(s3vectors_store, "album", unit_vectors(2))
    s3vectors_store.delete_collection("album")
    with pytest.raises(RequestError) as error:
        s3vectors_store.describe("album")
    assert error.value.status == 404
    add(s3vectors_store, "album", unit_vectors(1), version="model-v2")
    assert s3vectors_store.describe("album").model_version == "model-v2"


def test_an_id_repeated_in_one_request_is_written_once_the_last_one_winning(s3vectors_store):
    vectors = unit_vectors(2)
    assert add(s3vectors_store, "album", vectors, ids=["a", "a"], metadata=[{"v": 0}, {"v": 1}]) == 1
    assert s3vectors_store.describe("album").count == 1
    [match] = s3vectors_store.search("album", vectors[1], 5, 0.0, VERSION)
    assert (match.id, match.metadata, match.similarity) == ("a", {"v": 1}, pytest.approx(1.0, abs=1e-5))


def test_collections_are_independent(s3vectors_store):
    add(s3vectors_store, "one", unit_vectors(3, seed=1))
    add(s3vectors_store, "two", unit_vectors(5, seed=2))
    assert (s3vectors_store.describe("one").count, s3vectors_store.describe("two").count) == (3, 5)


def test_similarity_from_distance_inverts_the_cosine_distance():
    for cos in (-1.0, -0.3, 0.0, 0.42, 1.0):
        assert similarity_from_distance(1.0 - cos) == pytest.approx(0.5 + 0.5 * cos)


# --- Error paths, with botocore's Stubber -----------------------------------------------------------------------------

BUCKET_ARN = f"arn:aws:s3vectors:us-east-1:123456789012:bucket/{BUCKET}"


@pytest.fixture
def stubbed():
    client = boto3.client("s3vectors", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        stubber.add_response(
            "get_vector_bucket",
            {"vectorBucket": {"vectorBucketName": BUCKET, "vectorBucketArn": BUCKET_ARN,
                              "creationTime": "2026-01-01T00:00:00Z"}},
            {"vectorBucketName": BUCKET},
        )
        yield S3VectorsStore(BUCKET, client=client), stubber
        stubber.assert_no_pending_responses()


def test_a_concurrent_creator_wins_the_index_and_its_model_version_counts(stubbed):
    store, stubber = stubbed
    index_arn = {"resourceArn": f"{BUCKET_ARN}/index/album"}
    stubber.add_client_error("list_tags_for_resource", "NotFoundException", http_status_code=404,
                             expected_params=index_arn)
    stubber.add_client_error("create_index", "ConflictException", http_status_code=409)
    stubber.add_response("list_tags_for_resource", {"tags": {MODEL_VERSION_TAG: "model-v0"}}, index_arn)
    with pytest.raises(RequestError) as error:
        add(store, "album", unit_vectors(1))
    assert error.value.status == 409 and "model-v0" in error.value.message


def test_throttling_that_outlasts_the_retries_is_429(stubbed):
    store, stubber = stubbed
    stubber.add_response("list_tags_for_resource", {"tags": {MODEL_VERSION_TAG: VERSION}})
    stubber.add_client_error("query_vectors", "TooManyRequestsException", http_status_code=429)
    with pytest.raises(RequestError) as error:
        store.search("album", unit_vectors(1)[0], 3, 0.0, VERSION)
    assert error.value.status == 429


def test_query_asks_for_distances_and_metadata_with_top_k_and_the_index(stubbed):
    store, stubber = stubbed
    stubber.add_response("list_tags_for_resource", {"tags": {MODEL_VERSION_TAG: VERSION}})
    stubber.add_response(
        "query_vectors",
        {"vectors": [{"key": "a", "distance": 0.2, "metadata": {METADATA_KEY: '{"x":1}'}}],
         "distanceMetric": "cosine"},
        {"vectorBucketName": BUCKET, "indexName": "album", "topK": 7, "queryVector": ANY, "returnDistance": True,
         "returnMetadata": True},
    )
    [match] = store.search("album", unit_vectors(1)[0], 7, 0.0, VERSION)
    assert (match.id, match.similarity, match.metadata) == ("a", pytest.approx(0.9), {"x": 1})


def test_a_service_failure_stays_a_server_error_not_a_client_answer(stubbed):
    store, stubber = stubbed
    stubber.add_client_error("list_tags_for_resource", "ServiceUnavailableException", http_status_code=503)
    with pytest.raises(ClientError):
        store.search("album", unit_vectors(1)[0], 3, 0.0, VERSION)


def test_a_missing_vector_bucket_is_a_server_fault_not_a_404():
    client = boto3.client("s3vectors", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        stubber.add_client_error("get_vector_bucket", "NotFoundException", http_status_code=404)
        with pytest.raises(ClientError):
            S3VectorsStore(BUCKET, client=client).describe("album")


class _PagedLister:
    """A client whose ListVectors pages like S3 Vectors: a first page with a token, then 16 segments."""

    def __init__(self, per_segment: list[int]) -> None:
        self.per_segment = per_segment
        self.calls: list[dict] = []

    def get_vector_bucket(self, **_):
        return {"vectorBucket": {"vectorBucketArn": BUCKET_ARN}}

    def list_tags_for_resource(self, **_):
        return {"tags": {MODEL_VERSION_TAG: VERSION}}

    def list_vectors(self, **request):
        self.calls.append(request)
        assert request["returnData"] is False and request["returnMetadata"] is False
        if "segmentIndex" not in request:
            return {"vectors": [{"key": str(i)} for i in range(1000)], "nextToken": "more"}
        remaining = self.per_segment[request["segmentIndex"]] - (1000 if request.get("nextToken") else 0)
        page = {"vectors": [{"key": str(i)} for i in range(min(remaining, 1000))]}
        if remaining > 1000:
            page["nextToken"] = "next"
        return page


def test_a_large_collection_is_counted_over_all_16_segments_and_their_pages():
    per_segment = [1500 if segment % 2 else 700 for segment in range(16)]
    client = _PagedLister(per_segment)
    assert S3VectorsStore(BUCKET, client=client).describe("big").count == sum(per_segment)
    assert sorted({call["segmentIndex"] for call in client.calls if "segmentIndex" in call}) == list(range(16))
    assert all(call["segmentCount"] == 16 for call in client.calls if "segmentIndex" in call)
