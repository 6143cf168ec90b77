"""Fuzzing the API core: whatever the body, the answer is a 200 with a valid result or a 4xx with a message.

No example may reach the network: names never resolve (numeric addresses only, and those must be public), every
connection attempt is refused by a recorder, and S3 is a stub that answers "no such key".
"""

from __future__ import annotations

import base64
import io
import json
import math
import socket
from typing import Any

import numpy as np
import pytest
import urllib3.util.connection
from botocore.exceptions import ClientError
from helpers import b64, encode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from image_similarity.adapters.wsgi import ServiceApp
from image_similarity.core.service import ImageSimilarityService
from image_similarity.core.settings import FetchSettings
from image_similarity.sources.image_source import ImageSource
from PIL import Image

FIELDS = ["url", "img", "url_1", "img_1", "url_2", "img_2"]
FUZZ = settings(max_examples=60, deadline=3000, suppress_health_check=[HealthCheck.function_scoped_fixture])


def no_dns(host, port, type=0, **_):
    return socket.getaddrinfo(host, port, type=type, flags=socket.AI_NUMERICHOST)


class MissingS3:
    def get_object(self, Bucket: str, Key: str) -> dict:
        raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "stub"}}, "GetObject")


@pytest.fixture(scope="module")
def offline_service(service) -> ImageSimilarityService:
    source = ImageSource(FetchSettings(total_timeout=1.0), resolver=no_dns, s3_client=MissingS3())
    return ImageSimilarityService(service.embedder, source)


@pytest.fixture
def offline(offline_service, monkeypatch) -> ImageSimilarityService:
    """The offline service, with every connection attempt refused."""

    def refuse(address, *args, **kwargs):
        raise ConnectionRefusedError(f"fuzz tests open no connections ({address})")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", refuse)
    return offline_service


def check(service: ImageSimilarityService, body: bytes | str | None) -> tuple[int, dict[str, Any]]:
    response = service.handle(body)
    json.dumps(response.body)  # serialisable
    if response.status == 200:
        if "similarity" in response.body:
            assert 0.0 <= response.body["similarity"] <= 1.0
        else:
            vector = np.array(response.body["result"])
            assert vector.shape == (512,) and math.isclose(float(np.linalg.norm(vector)), 1.0, rel_tol=1e-3)
    else:
        assert 400 <= response.status < 500, response
        assert set(response.body) == {"message"} and response.body["message"], response
    return response.status, response.body


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# Random text, and text drawn from the characters URL parsers disagree about.
url_tails = st.text(max_size=40) | st.text(alphabet="[]:@%#?/\\.0123456789abcdefx:-_ \x00", max_size=30)
url_like = st.sampled_from(["http://", "https://", "s3://", "HTTP://", "ftp://", "", "//"]).flatmap(
    lambda scheme: url_tails.map(lambda rest: scheme + rest)
)
field_values = json_values | url_like | st.binary(max_size=64).map(b64)


@FUZZ
@given(value=json_values)
def test_fuzz_random_json_values_as_the_body(offline, value):
    check(offline, json.dumps(value))


@FUZZ
@given(fields=st.dictionaries(st.sampled_from([*FIELDS, "URL", "image", ""]), field_values, max_size=4))
def test_fuzz_request_shapes_with_random_field_values(offline, fields):
    check(offline, json.dumps(fields))


@FUZZ
@given(url=url_like)
def test_fuzz_random_urls(offline, url):
    check(offline, json.dumps({"url": url}))


@pytest.mark.parametrize("url", ["http://[::1", "https://[::1/x.jpg", "s3://[bucket/key", "http://[fe80::1%zz]/"])
def test_fuzz_unparseable_urls_are_a_4xx(offline, url):
    assert check(offline, json.dumps({"url": url}))[0] in (400, 422)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_fuzz_random_bytes_as_the_body(offline, raw):
    check(offline, raw)


@FUZZ
@given(text=st.text(max_size=200))
def test_fuzz_random_strings_as_base64(offline, text):
    check(offline, json.dumps({"img": text}))


@FUZZ
@given(raw=st.binary(max_size=300))
def test_fuzz_random_bytes_as_base64(offline, raw):
    status, _ = check(offline, json.dumps({"img": base64.b64encode(raw).decode()}))
    assert status in (400, 422)


@pytest.fixture(scope="module")
def small_images(photos) -> dict[str, bytes]:
    picture = Image.fromarray(photos["chelsea"]).resize((64, 48))
    return {
        "JPEG": encode(picture, "JPEG", quality=85),
        "progressive JPEG": encode(picture, "JPEG", progressive=True),
        "PNG": encode(picture, "PNG"),
        "BMP": encode(picture, "BMP"),
    }


@FUZZ
@given(fmt=st.sampled_from(["JPEG", "progressive JPEG", "PNG", "BMP"]), cut=st.floats(0.0, 1.0))
def test_fuzz_truncated_real_images(offline, small_images, fmt, cut):
    data = small_images[fmt]
    check(offline, json.dumps({"img": b64(data[: int(len(data) * cut)])}))


@FUZZ
@given(
    fmt=st.sampled_from(["JPEG", "progressive JPEG", "PNG", "BMP"]),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 7)), min_size=1, max_size=8),
)
def test_fuzz_bit_flipped_real_images(offline, small_images, fmt, flips):
    data = bytearray(small_images[fmt])
    for where, bit in flips:
        data[int(where * len(data))] ^= 1 << bit
    check(offline, json.dumps({"img": b64(bytes(data))}))


def other_format(name: str) -> bytes:
    if name == "SVG":
        return b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(out, name)
    return out.getvalue()


@pytest.mark.parametrize("name", ["GIF", "WEBP", "TIFF", "PDF", "SVG", "ICO", "PPM"])
def test_fuzz_other_formats_are_refused_by_content(offline, name):
    status, body = check(offline, json.dumps({"img": b64(other_format(name))}))
    assert status == 422 and "JPEG, PNG or BMP" in body["message"]


@pytest.mark.parametrize("served_as", ["cat.png", "cat.bmp", "cat.gif", "cat"])
def test_fuzz_mismatched_extension_and_content_type_are_ignored(service, file_server, cat_jpeg, served_as):
    """A URL's name and Content-Type say nothing: the bytes decide (here a JPEG under other names)."""
    file_server.routes[f"/{served_as}"] = (200, {"Content-Type": "image/gif"}, cat_jpeg)
    assert service.handle(json.dumps({"url": file_server.url(f"/{served_as}")})).status == 200


def test_fuzz_gif_named_jpg_is_refused(service, file_server):
    file_server.routes["/cat.jpg"] = (200, {"Content-Type": "image/jpeg"}, other_format("GIF"))
    response = service.handle(json.dumps({"url": file_server.url("/cat.jpg")}))
    assert response.status == 422 and "JPEG, PNG or BMP" in response.body["message"]


@FUZZ
@given(
    raw=st.binary(max_size=100),
    length=st.sampled_from(["", "0", "-1", "abc", "1e3", "99999999999", " 5", "5"]),
    method=st.sampled_from(["POST", "GET", "PUT", "OPTIONS", "DELETE", "HEAD"]),
    path=st.sampled_from(["/image-similarity", "/", "/ping", "/image-similarity/", "/../etc/passwd"]),
)
def test_fuzz_wsgi_requests(offline, raw, length, method, path):
    """Headers and methods the local server may pass on: always a JSON answer with a 2xx or 4xx status."""
    statuses: list[str] = []
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "CONTENT_LENGTH": length, "wsgi.input": io.BytesIO(raw)}
    payload = b"".join(ServiceApp(offline, "/image-similarity")(environ, lambda s, h: statuses.append(s)))
    status = int(statuses[0].split()[0])
    assert status == 200 or 400 <= status < 500
    assert isinstance(json.loads(payload), dict)
