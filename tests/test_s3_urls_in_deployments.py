"""s3:// URLs in a deployed stack: refused with a 403 naming the parameter until buckets are named (issue 14, defect 9).

The stack sets S3_URLS_NEED_ALLOWED_BUCKETS (infra/service.py); the CLI does not, so locally no list means any bucket.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber
from image_similarity.core.errors import RequestError
from image_similarity.core.settings import Settings
from image_similarity.sources.image_source import ImageSource


def _stubbed_s3():
    return boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")


def _deployed_environment(allowed_s3_buckets: str) -> dict[str, str]:
    """What both backends' templates set (tests/infra/test_infra_backends.py checks them)."""
    return {"ALLOWED_S3_BUCKETS": allowed_s3_buckets, "S3_URLS_NEED_ALLOWED_BUCKETS": "AllowedS3Buckets"}


def test_a_deployment_without_buckets_refuses_s3_urls_before_calling_s3():
    settings = Settings.from_env(_deployed_environment(""))
    client = _stubbed_s3()
    with Stubber(client), pytest.raises(RequestError) as err:  # any S3 call would fail the stubber
        ImageSource(settings.fetch, s3_client=client).read("url", "s3://photos/a.jpg")
    assert err.value.status == 403
    assert "AllowedS3Buckets" in err.value.message and "photos" not in err.value.message


def test_a_deployment_with_buckets_reads_them_and_refuses_the_others():
    settings = Settings.from_env(_deployed_environment("photos,scans"))
    client = _stubbed_s3()
    with Stubber(client) as stub:
        stub.add_response("get_object", {"ContentLength": 3, "Body": _Body(b"abc")}, {"Bucket": "photos", "Key": "a"})
        assert ImageSource(settings.fetch, s3_client=client).read("url", "s3://photos/a") == b"abc"
        with pytest.raises(RequestError) as err:
            ImageSource(settings.fetch, s3_client=client).read("url", "s3://elsewhere/a")
    assert err.value.status == 403 and "AllowedS3Buckets" not in err.value.message


def test_the_cli_without_a_list_still_reads_any_bucket():
    settings = Settings.from_env({})
    client = _stubbed_s3()
    with Stubber(client) as stub:
        stub.add_response("get_object", {"ContentLength": 3, "Body": _Body(b"abc")}, {"Bucket": "photos", "Key": "a"})
        assert ImageSource(settings.fetch, s3_client=client).read("url", "s3://photos/a") == b"abc"


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, _limit: int) -> bytes:
        return self._data
