"""The batch Lambda on moto: a Distributed Map batch (S3 listing items) in, one Parquet part out at a path that a
retry of the same batch overwrites; unusable images are rows, not a failed batch; logs hold no S3 keys."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from batch.conftest import BUCKET, UNUSABLE
from image_similarity.adapters import batch_lambda
from image_similarity.batch.locations import BatchInputError
from image_similarity.batch.worker import DEFAULT_MODEL_BATCH, ItemReader, Worker
from image_similarity.sources import s3_fetch


@pytest.fixture
def lambda_env(s3, service, monkeypatch):
    """The handler's S3 client and worker built inside moto, on the session's model session."""
    s3_fetch.default_client.cache_clear()
    monkeypatch.setattr(batch_lambda, "default_worker", lambda: Worker(service.embedder, ItemReader(s3_client=s3)))
    yield s3
    s3_fetch.default_client.cache_clear()


@pytest.fixture
def logged() -> io.StringIO:
    """The batch logger's output, redirected for one test."""
    handler = batch_lambda.logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


def listing_items(s3, prefix: str = "photos/") -> list[dict]:
    """What the S3 ListObjectsV2 item reader hands the ItemBatcher: Etag, Key, LastModified, Size, StorageClass."""
    contents = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
    return [
        {"Etag": o["ETag"], "Key": o["Key"], "LastModified": int(o["LastModified"].timestamp()), "Size": o["Size"],
         "StorageClass": o.get("StorageClass", "STANDARD")}
        for o in contents
    ]


def event(items: list[dict], **batch_input) -> dict:
    return {
        "Items": items,
        "BatchInput": {"input_bucket": BUCKET, "output_bucket": "vectors", "output_prefix": "runs/2026/",
                       "execution_name": "embed-1", **batch_input},
    }


def read_part(s3, url: str):
    bucket, key = url[len("s3://") :].split("/", 1)
    return pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


def test_a_batch_becomes_one_parquet_part(lambda_env, catalogue, service, logged):
    s3 = lambda_env
    items = listing_items(s3)
    answer = batch_lambda.handler(event(items), None)
    assert answer["embedded"] == len(catalogue) - len(UNUSABLE) and answer["failed"] == len(UNUSABLE)
    assert answer["part"].startswith("s3://vectors/runs/2026/parts/embed-1/") and answer["part"].endswith(".parquet")
    rows = {row["key"]: row for row in read_part(s3, answer["part"]).to_pylist()}
    assert set(rows) == set(catalogue)  # the folder marker `photos/2024/` is no row
    chelsea = rows["photos/chelsea.jpg"]
    expected = service.embed_images([catalogue["photos/chelsea.jpg"]])[0]
    np.testing.assert_allclose(np.array(chelsea["embedding"], np.float32), expected, atol=1e-5)
    assert chelsea["etag"] == next(i["Etag"] for i in items if i["Key"] == "photos/chelsea.jpg")
    notes = rows["photos/notes.txt"]
    assert notes["embedding"] is None and "unsupported image format" in notes["error"]
    (line,) = [json.loads(text) for text in logged.getvalue().splitlines()]
    assert line["embedded"] == answer["embedded"] and line["items"] == len(items)
    assert "photos/" not in logged.getvalue() and "runs/2026" not in logged.getvalue()


def test_a_retried_batch_overwrites_its_own_part(lambda_env):
    s3 = lambda_env
    items = listing_items(s3)[:3]
    first = batch_lambda.handler(event(items), None)
    again = batch_lambda.handler(event(items), None)
    other = batch_lambda.handler(event(listing_items(s3)[3:5]), None)
    assert first["part"] == again["part"] != other["part"]
    listed = s3.list_objects_v2(Bucket="vectors", Prefix="runs/2026/parts/embed-1/")["Contents"]
    assert len(listed) == 2


def test_inventory_manifest_items_name_their_bucket_and_version(lambda_env, catalogue):
    s3 = lambda_env
    # As the Step Functions docs show an inventory item: strings throughout (Size too), the bucket named per item.
    item = {"Bucket": BUCKET, "Key": "photos/coffee.jpg", "ETag": "abc", "VersionId": "v1", "Size": "5",
            "LastModifiedDate": "2022-11-16T00:29:32.000Z"}
    answer = batch_lambda.handler(event([item], input_bucket=None), None)
    (row,) = read_part(s3, answer["part"]).to_pylist()
    assert (row["bucket"], row["etag"], row["version_id"], row["error"]) == (BUCKET, "abc", "v1", None)


def test_a_missing_object_is_an_error_row(lambda_env):
    answer = batch_lambda.handler(event([{"Key": "photos/deleted-since-listing.jpg", "Etag": '"x"'}]), None)
    assert (answer["embedded"], answer["failed"]) == (0, 1)
    (row,) = read_part(lambda_env, answer["part"]).to_pylist()
    assert "does not exist" in row["error"]


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"Items": []}, "needs `Items`"),
        (event([{"Etag": "x"}]), "needs a `Key`"),
        (event([{"Key": "a.jpg"}], output_bucket=""), "output_bucket"),
        (event([{"Key": "a.jpg"}], execution_name="../../elsewhere"), "execution_name"),
        (event([{"Key": "a.jpg"}], input_bucket=None), "no valid bucket"),
    ],
)
def test_a_malformed_event_fails_the_batch_with_a_reason(bad, words):
    with pytest.raises(BatchInputError, match=words):
        batch_lambda.parse_event(bad)


def test_parts_go_under_the_output_prefix_and_execution():
    parsed = batch_lambda.parse_event(event([{"Key": "a.jpg"}], output_prefix="/runs/x/"))
    assert parsed.parts_prefix == "runs/x/parts/embed-1/"
    assert batch_lambda.parse_event(event([{"Key": "a.jpg"}], output_prefix="")).parts_prefix == "parts/embed-1/"


def test_the_worker_is_built_once_from_the_service_and_the_environment(service, monkeypatch, aws_env):
    """One vCPU per 1,769 MB: a 1,769 MB function decodes one image at a time beside the model's one thread."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")
    monkeypatch.setattr(batch_lambda, "default_service", lambda: service)
    s3_fetch.default_client.cache_clear()
    batch_lambda.default_worker.cache_clear()
    try:
        worker = batch_lambda.default_worker()
        assert worker is batch_lambda.default_worker()
        assert worker.embedder is service.embedder and worker.model_batch == DEFAULT_MODEL_BATCH
        assert worker.read.s3_client is s3_fetch.default_client()
        assert worker.decoders == 1
    finally:
        batch_lambda.default_worker.cache_clear()
        s3_fetch.default_client.cache_clear()
