"""`AWS_ENDPOINT_URL` end to end: `image-similarity embed s3://bucket/prefix/` run as a user runs it (a separate
process) against an S3-compatible server on 127.0.0.1 (moto's server standing in for MinIO or Ceph)."""

from __future__ import annotations

import subprocess
import sys

import boto3
import numpy as np
import pyarrow.parquet as pq
import pytest
from batch.conftest import UNUSABLE
from moto.server import ThreadedMotoServer


@pytest.fixture
def s3_server(aws_env):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_embed_an_s3_prefix_from_an_s3_compatible_store(s3_server, catalogue, service, tmp_path, monkeypatch):
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    client.create_bucket(Bucket="store")
    for key, body in catalogue.items():
        client.put_object(Bucket="store", Key=key, Body=body)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("IMAGE_SIMILARITY_THREADS", "1")
    out = tmp_path / "vectors.parquet"
    done = subprocess.run(
        [sys.executable, "-m", "image_similarity.adapters.cli", "embed", "s3://store/photos/", "--out", str(out)],
        check=False, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 1, done.stderr  # 1: the unusable objects, each reported
    assert f"{len(catalogue) - len(UNUSABLE)} images embedded, {len(UNUSABLE)} failed" in done.stderr
    rows = {row["key"]: row for row in pq.read_table(out).to_pylist()}
    assert set(rows) == set(catalogue)
    np.testing.assert_allclose(
        np.array(rows["photos/coffee.jpg"]["embedding"], np.float32),
        service.embed_images([catalogue["photos/coffee.jpg"]])[0],
        atol=1e-5,
    )
