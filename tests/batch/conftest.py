"""Batch fixtures: an S3 bucket in moto holding photos, odd objects and a folder marker; the CLI on the session's
service (one ONNX session for the whole test run)."""

from __future__ import annotations

import boto3
import numpy as np
import pytest
from helpers import encode
from image_similarity.adapters import cli
from moto import mock_aws
from PIL import Image
from skimage import data

BUCKET = "catalogue"
SIDE = 160  # small photos keep the tests fast


def small(pixels: np.ndarray, side: int = SIDE) -> Image.Image:
    image = Image.fromarray(pixels if pixels.ndim == 3 else np.stack([pixels] * 3, axis=-1)).convert("RGB")
    image.thumbnail((side, side))
    return image


@pytest.fixture(scope="session")
def catalogue() -> dict[str, bytes]:
    """Key -> bytes under `photos/`: eight images in three formats, and three objects that are not usable images."""
    images = {}
    for name in ("astronaut", "chelsea", "coffee", "rocket", "camera", "moon", "page", "brick"):
        image = small(getattr(data, name)())
        fmt, ext = {"camera": ("PNG", "png"), "moon": ("BMP", "bmp")}.get(name, ("JPEG", "jpg"))
        images[f"photos/{name}.{ext}"] = encode(image, fmt)
    # An odd key: URL syntax characters must reach S3 as they are.
    images["photos/2024/caf\u00e9 #1?.jpg"] = encode(small(data.rocket()).rotate(90, expand=True), "JPEG")
    broken = {
        "photos/notes.txt": b"not an image",
        "photos/truncated.jpg": images["photos/chelsea.jpg"][:600],
        "photos/empty.jpg": b"",
    }
    return {**images, **broken}


UNUSABLE = {"photos/notes.txt", "photos/truncated.jpg", "photos/empty.jpg"}


@pytest.fixture
def aws_env(monkeypatch):
    """Fake credentials and a region: nothing here may reach AWS."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def s3(aws_env, catalogue):
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.create_bucket(Bucket="vectors")
        for key, body in catalogue.items():
            client.put_object(Bucket=BUCKET, Key=key, Body=body)
        client.put_object(Bucket=BUCKET, Key="photos/2024/", Body=b"")  # the console's folder marker
        client.put_object(Bucket=BUCKET, Key="elsewhere/skip.jpg", Body=catalogue["photos/coffee.jpg"])
        yield client


@pytest.fixture
def run_cli(monkeypatch, service):
    """`image-similarity` on the session's service."""
    monkeypatch.setattr(cli.batch, "default_service", lambda: service)
    return cli.main
