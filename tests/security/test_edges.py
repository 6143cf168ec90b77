"""Inputs at the edges after the red team's round 2 (issue 18): Lambda events of any shape (finding 11), Host names
on a loopback server (12), heap addresses in messages (10), bucket names S3 forbids and the metadata probe (13)."""

from __future__ import annotations

import io
import json
import socket

import pytest
from helpers import b64
from image_similarity.adapters import lambda_handler
from image_similarity.adapters.explorer_page import ExplorerConfig
from image_similarity.adapters.local_server import allowed_hosts, local_app, no_metadata_probe
from image_similarity.core.errors import RequestError, reason
from image_similarity.sources.s3_fetch import parse_s3_url


@pytest.fixture
def handle(service, monkeypatch):
    monkeypatch.setattr(lambda_handler, "default_service", lambda: service)
    return lambda_handler.handler


@pytest.mark.parametrize("event", [None, [], [1, 2], 7, "text", {"requestContext": "abc"},
                                   {"requestContext": {"requestId": ["x"]}, "httpMethod": 5, "path": {}}])
def test_lambda_events_of_any_shape_get_a_json_400(handle, event):
    answer = handle(event)
    assert answer["statusCode"] == 400 and json.loads(answer["body"])["message"]


@pytest.mark.parametrize("body", [{"url": "https://example.com/a.jpg"}, 12, ["a"], True])
def test_lambda_body_that_is_not_a_string_is_a_400(handle, body):
    answer = handle({"httpMethod": "POST", "path": "/image-similarity", "body": body})
    assert answer["statusCode"] == 400 and "string" in json.loads(answer["body"])["message"]


def test_lambda_is_base64_encoded_false_as_a_string_is_not_true(handle, cat_jpeg):
    body = json.dumps({"img": b64(cat_jpeg)})
    answer = handle({"httpMethod": "POST", "path": "/image-similarity", "body": body, "isBase64Encoded": "false"})
    assert answer["statusCode"] == 200


def get(app, path: str, host: str | None) -> tuple[int, dict | bytes]:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080"}
    if host is not None:
        environ["HTTP_HOST"] = host
    statuses: list[str] = []
    body = b"".join(app(environ, lambda status, headers: statuses.append(status)))
    return int(statuses[0].split()[0]), body


@pytest.mark.parametrize("host", ["localhost:8080", "127.0.0.1:8080", "[::1]:8080", "LOCALHOST", None])
def test_a_loopback_server_answers_loopback_host_names(service, host):
    app = local_app(service, ExplorerConfig(), allowed_hosts("127.0.0.1", {}))
    assert get(app, "/ping", host)[0] == 200


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8080", "127.0.0.1.attacker.example"])
def test_a_loopback_server_refuses_foreign_host_names(service, host):
    """DNS rebinding: a page on attacker.example whose name now resolves to 127.0.0.1 posts to the server."""
    app = local_app(service, ExplorerConfig(), allowed_hosts("127.0.0.1", {}))
    status, body = get(app, "/api-explorer/openapi.json", host)
    assert status == 403 and b"attacker" not in body


def test_listed_host_names_are_answered_and_any_beyond_loopback_without_a_list(service):
    listed = local_app(service, ExplorerConfig(), allowed_hosts("127.0.0.1", {"IMAGE_SIMILARITY_ALLOWED_HOSTS": "box"}))
    assert get(listed, "/ping", "box:8080")[0] == 200
    assert allowed_hosts("0.0.0.0", {}) is None
    assert allowed_hosts("0.0.0.0", {"IMAGE_SIMILARITY_ALLOWED_HOSTS": "a.example, b.example"}) == {"a.example",
                                                                                                     "b.example"}


@pytest.mark.parametrize("host", ['x"><script>', "a b", "a/b", "[::1", "é.example"])
def test_a_host_header_that_is_not_a_name_is_refused_before_the_explorer_copies_it(service, host):
    app = local_app(service, ExplorerConfig(), None)
    status, body = get(app, "/api-explorer/openapi.json", host)
    assert status == 400 and b"<script>" not in body


def test_messages_carry_no_heap_addresses():
    class Opaque:
        pass

    text = reason(ValueError(f"cannot identify image file {io.BytesIO()!r} via {Opaque()!r}"))
    assert "0x" not in text and "cannot identify image file" in text


def test_a_corrupt_image_message_has_no_heap_address(call):
    status, body = call({"img": b64(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)})
    assert status == 422 and " at 0x" not in body["message"]


@pytest.mark.parametrize("bucket", ["my..bucket", "192.168.1.10", "xn--bucket", "sthree-bucket", "bucket-s3alias",
                                    "bucket--ol-s3", "amzn-s3-demo-bucket", "bucket.mrap", "bucket--x-s3",
                                    "bucket--table-s3"])
def test_bucket_names_s3_forbids_are_refused(bucket):
    with pytest.raises(RequestError) as err:
        parse_s3_url(f"s3://{bucket}/key.jpg")
    assert err.value.status == 400 and bucket not in err.value.message


def test_the_local_server_never_probes_the_instance_metadata_address(monkeypatch):
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)
    env: dict[str, str] = {}
    no_metadata_probe(env)
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    import botocore.session

    attempts: list[object] = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: attempts.append(address))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", env["AWS_EC2_METADATA_DISABLED"])
    assert botocore.session.get_session().get_credentials() is None
    assert attempts == []
    env = {"AWS_EC2_METADATA_DISABLED": "false"}  # someone on EC2 who wants the instance role keeps it
    no_metadata_probe(env)
    assert env["AWS_EC2_METADATA_DISABLED"] == "false"


@pytest.mark.parametrize("length", ["\u00b2", "\u0663", "-1", "1e3"])
def test_a_wsgi_content_length_that_is_no_ascii_number_is_a_400(service, length):
    from image_similarity.adapters.wsgi import ServiceApp

    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/image-similarity", "CONTENT_LENGTH": length,
               "wsgi.input": io.BytesIO(b"{}")}
    statuses: list[str] = []
    ServiceApp(service, "/image-similarity")(environ, lambda status, headers: statuses.append(status))
    assert statuses[0].startswith("400")


def test_a_lambda_context_with_an_odd_request_id_still_gets_an_answer(handle):
    class Context:
        aws_request_id = 12345

    assert handle({"body": "{}"}, Context())["statusCode"] == 400
