"""The S3 Vectors store on moto, for the tests in this folder (other suites import `moto_s3vectors_store`)."""

from __future__ import annotations

import pytest
from search_aws.moto_s3vectors import moto_s3vectors_store


@pytest.fixture
def s3vectors_store():
    with moto_s3vectors_store() as store:
        yield store
