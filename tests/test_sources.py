"""Image sources: base64 spellings, http(s) URLs (loopback servers only) with the address guard, and S3 (moto)."""

from __future__ import annotations

import base64
import json
import socket

import boto3
import pytest
from botocore.stub import Stubber
from helpers import b64
from image_similarity.core.errors import RequestError
from image_similarity.core.settings import FetchSettings
from image_similarity.sources.http_fetch import fetch_http, is_public
from image_similarity.sources.image_source import ImageSource, decode_base64
from moto import mock_aws

LOOPBACK_OK = FetchSettings(allow_loopback=True, total_timeout=3.0, read_timeout=1.0)


# --- base64 -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "spell",
    [
        lambda raw: base64.b64encode(raw).decode(),
        lambda raw: base64.urlsafe_b64encode(raw).decode(),
        lambda raw: base64.b64encode(raw).decode().rstrip("="),
        lambda raw: "data:image/png;base64," + base64.b64encode(raw).decode(),
        lambda raw: base64.encodebytes(raw).decode(),  # MIME line breaks
    ],
    ids=["standard", "urlsafe", "unpadded", "data-uri", "line-breaks"],
)
def test_base64_spellings_decode_to_the_same_bytes(spell):
    raw = bytes(range(256)) * 3 + b"\xfb\xff"
    assert decode_base64(spell(raw)) == raw


@pytest.mark.parametrize("text", ["@@@@", "abcde", "=", "data:image/png;base64,"])
def test_invalid_base64_is_a_400(text):
    with pytest.raises(RequestError) as err:
        decode_base64(text)
    assert err.value.status == 400


# --- http(s) -------------------------------------------------------------------------------------------------------

def stub_resolver(table: dict[str, str]):
    """getaddrinfo stand-in: tests never let a name resolve, or a connection go, beyond this machine."""

    def resolve(host, port, type=0, **_):
        if host not in table:
            raise socket.gaierror(f"stub resolver has no entry for {host}")
        family = socket.AF_INET6 if ":" in table[host] else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (table[host], port))]

    return resolve


def test_http_url_is_fetched_from_a_loopback_server(file_server, cat_jpeg):
    file_server.routes["/cat.jpg"] = (200, {}, cat_jpeg)
    assert fetch_http(file_server.url("/cat.jpg"), LOOPBACK_OK) == cat_jpeg


def test_loopback_is_refused_without_the_test_switch(file_server, cat_jpeg):
    file_server.routes["/cat.jpg"] = (200, {}, cat_jpeg)
    with pytest.raises(RequestError) as err:
        fetch_http(file_server.url("/cat.jpg"), FetchSettings())
    assert err.value.status == 400
    assert file_server.requests == []  # refused before connecting


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.169.254", "fd00:ec2::254", "0.0.0.0",
     "::ffff:10.0.0.1", "224.0.0.1", "fe80::1", "::1", "127.0.0.1"],
)
def test_names_resolving_to_non_public_addresses_are_refused(address):
    resolver = stub_resolver({"images.example.com": address})
    with pytest.raises(RequestError) as err:
        fetch_http("http://images.example.com/a.jpg", FetchSettings(), resolver)
    assert err.value.status == 400
    assert "public" in err.value.message


def test_redirect_to_a_private_address_is_refused(file_server):
    file_server.routes["/hop"] = (302, {"Location": "http://internal.example/secret"}, b"")
    resolver = stub_resolver({"127.0.0.1": "127.0.0.1", "internal.example": "10.0.0.5"})
    with pytest.raises(RequestError) as err:
        fetch_http(file_server.url("/hop"), LOOPBACK_OK, resolver)
    assert "10.0.0.5" in err.value.message


def test_redirects_are_followed_up_to_the_cap(file_server, cat_jpeg):
    file_server.routes["/cat.jpg"] = (200, {}, cat_jpeg)
    file_server.routes["/r1"] = (301, {"Location": "/cat.jpg"}, b"")
    assert fetch_http(file_server.url("/r1"), LOOPBACK_OK) == cat_jpeg
    for i in range(5):
        file_server.routes[f"/loop{i}"] = (302, {"Location": f"/loop{i + 1}"}, b"")
    with pytest.raises(RequestError) as err:
        fetch_http(file_server.url("/loop0"), LOOPBACK_OK)
    assert "redirected more than 3" in err.value.message


def test_public_addresses_are_allowed():
    assert is_public(__import__("ipaddress").ip_address("93.184.216.34"))
    assert not is_public(__import__("ipaddress").ip_address("::ffff:192.168.0.1"))


def test_non_200_answer_is_a_422(file_server):
    with pytest.raises(RequestError) as err:
        fetch_http(file_server.url("/missing.jpg"), LOOPBACK_OK)
    assert err.value.status == 422 and "404" in err.value.message


def test_body_over_the_byte_cap_is_refused(file_server):
    file_server.routes["/big"] = (200, {}, b"\xff" * 5000)
    with pytest.raises(RequestError) as err:
        fetch_http(file_server.url("/big"), FetchSettings(allow_loopback=True, max_bytes=1000))
    assert "1000" in err.value.message


def test_unreachable_url_is_a_422():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RequestError) as err:
        fetch_http(f"http://127.0.0.1:{port}/a.jpg", LOOPBACK_OK)
    assert err.value.status == 422


@pytest.mark.parametrize("url", ["http://user:pw@example.com/a.jpg", "http://a@127.0.0.1/a.jpg", "http:///a.jpg"])
def test_credentials_and_hostless_urls_are_refused(url):
    with pytest.raises(RequestError) as err:
        fetch_http(url, FetchSettings(), stub_resolver({}))
    assert err.value.status == 400


# --- S3 ------------------------------------------------------------------------------------------------------------

@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="photos")
        yield client


def test_s3_object_is_read(s3, cat_jpeg):
    s3.put_object(Bucket="photos", Key="cats/chelsea.jpg", Body=cat_jpeg)
    source = ImageSource(FetchSettings(), s3_client=s3)
    assert source.read("url", "s3://photos/cats/chelsea.jpg") == cat_jpeg


def test_s3_url_through_the_api(s3, cat_jpeg, service):
    s3.put_object(Bucket="photos", Key="chelsea.jpg", Body=cat_jpeg)
    api = type(service)(service.embedder, ImageSource(FetchSettings(), s3_client=s3))
    by_url = api.handle('{"url": "s3://photos/chelsea.jpg"}')
    by_img = api.handle(json.dumps({"img": b64(cat_jpeg)}))
    assert by_url.status == 200 and by_url.body == by_img.body


@pytest.mark.parametrize(
    "url, words", [("s3://photos/missing.jpg", "does not exist"), ("s3://no-such-bucket/a.jpg", "does not exist")]
)
def test_missing_s3_object_is_a_422(s3, url, words):
    with pytest.raises(RequestError) as err:
        ImageSource(FetchSettings(), s3_client=s3).read("url", url)
    assert err.value.status == 422 and words in err.value.message


def test_s3_access_denied_is_a_422():
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(client) as stub:
        stub.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(RequestError) as err:
            ImageSource(FetchSettings(), s3_client=client).read("url", "s3://private-bucket/a.jpg")
    assert err.value.status == 422 and "denied" in err.value.message


def test_bucket_outside_the_allowed_list_is_a_403(s3):
    source = ImageSource(FetchSettings(allowed_buckets=frozenset({"other"})), s3_client=s3)
    with pytest.raises(RequestError) as err:
        source.read("url", "s3://photos/a.jpg")
    assert err.value.status == 403
