"""What gets logged: one JSON line per request with its id, status and timings, locally and in Lambda alike; never
image bytes, base64 text, URL paths or query strings (pre-signed URLs carry credentials)."""

from __future__ import annotations

import io
import json

import pytest
from helpers import b64
from image_similarity.adapters import lambda_handler
from image_similarity.adapters.local_server import API_PATH
from image_similarity.adapters.wsgi import ServiceApp
from image_similarity.core import request_log

SECRET = "X-Amz-Signature=5ec12e7c0ffee&X-Amz-Credential=AKIAEXAMPLESECRET"
COMMON = {"request_id", "method", "path", "status", "duration_ms", "body_bytes", "service", "level", "timestamp"}


def lines_of(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def wsgi_post(service, body: bytes, request_id: str | None = None) -> int:
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": API_PATH, "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body)}
    if request_id:
        environ["HTTP_X_REQUEST_ID"] = request_id
    statuses: list[str] = []
    ServiceApp(service, API_PATH)(environ, lambda status, headers: statuses.append(status))
    return int(statuses[0].split()[0])


def requests_of_every_kind(file_server, cat_jpeg) -> list[bytes]:
    file_server.routes["/private/cat.jpg?" + SECRET] = (200, {}, cat_jpeg)
    signed = file_server.url("/private/cat.jpg?" + SECRET)
    return [
        json.dumps({"img": b64(cat_jpeg)}).encode(),  # good, base64
        json.dumps({"url": signed}).encode(),  # good, pre-signed URL
        json.dumps({"url_1": signed, "img_2": b64(cat_jpeg)}).encode(),  # good, pair
        json.dumps({"url": file_server.url("/private/missing.jpg?" + SECRET)}).encode(),  # 422
        json.dumps({"url": "http://169.254.169.254/latest/meta-data/iam?" + SECRET}).encode(),  # 400
        json.dumps({"url": "s3://[bucket/private/key?" + SECRET}).encode(),  # 400
        json.dumps({"img": b64(cat_jpeg)[:5000] + "!!"}).encode(),  # 400, bad base64
        json.dumps({"img": b64(cat_jpeg[:3000])}).encode(),  # 422, truncated image
        b'{"img": 5, "extra": "' + SECRET.encode() + b'"}',  # 400
    ]


def assert_clean(lines: list[dict], cat_jpeg: bytes) -> None:
    text = "\n".join(json.dumps(line) for line in lines)
    for forbidden in (b64(cat_jpeg)[100:140], b64(cat_jpeg[:3000])[200:240], "5ec12e7c0ffee", "AKIAEXAMPLESECRET",
                      "/private/", "meta-data", "key?", "\\u00ff\\u00d8"):
        assert forbidden not in text, forbidden


def test_logs_local_requests_have_id_status_timings_and_no_secrets(service, file_server, cat_jpeg, captured):
    bodies = requests_of_every_kind(file_server, cat_jpeg)
    statuses = [wsgi_post(service, body, request_id=f"req-{i}") for i, body in enumerate(bodies)]
    assert statuses == [200, 200, 200, 422, 400, 400, 400, 422, 400]
    lines = lines_of(captured)
    assert [line["status"] for line in lines] == statuses
    assert [line["request_id"] for line in lines] == [f"req-{i}" for i in range(len(bodies))]
    for line in lines:
        assert set(line) >= COMMON and line["message"] == "request" and line["path"] == API_PATH
    good = lines[1]
    assert good["inputs"] == [{"field": "url", "scheme": "http", "host": "127.0.0.1"}]
    assert good["read_ms"] >= 0 and good["embed_ms"] > 0
    assert lines[0]["inputs"] == [{"field": "img", "base64_chars": len(b64(cat_jpeg))}]
    assert "169.254.169.254" in lines[4]["error"]  # the host stays, for the operator
    assert_clean(lines, cat_jpeg)


def test_logs_lambda_requests_have_the_same_fields(service, monkeypatch, file_server, cat_jpeg, captured):
    monkeypatch.setattr(lambda_handler, "default_service", lambda: service)

    class Context:
        aws_request_id = "8f5a1c2e-lambda"

    bodies = requests_of_every_kind(file_server, cat_jpeg)
    for i, body in enumerate(bodies):
        event = {"httpMethod": "POST", "path": "/image-similarity", "body": body.decode(),
                 "queryStringParameters": {"token": "5ec12e7c0ffee"}, "requestContext": {"requestId": f"apigw-{i}"}}
        lambda_handler.handler(event, Context())
    lines = lines_of(captured)
    assert [line["status"] for line in lines] == [200, 200, 200, 422, 400, 400, 400, 422, 400]
    assert [line["request_id"] for line in lines] == [f"apigw-{i}" for i in range(len(bodies))]
    assert all(set(line) >= COMMON and line["lambda_request_id"] == "8f5a1c2e-lambda" for line in lines)
    assert_clean(lines, cat_jpeg)


def test_logs_a_header_that_is_not_a_plain_token_is_not_used_as_the_request_id(service, captured):
    wsgi_post(service, b"{}", request_id='x"\n{"status": 200}')
    [line] = lines_of(captured)
    assert line["status"] == 400 and len(line["request_id"]) == 36  # a fresh UUID


@pytest.mark.parametrize(
    "message, kept, dropped",
    [
        ("could not read https://bucket.s3.amazonaws.com/k.jpg?X-Amz-Signature=abc", "https://bucket.s3.amazonaws.com",
         "X-Amz-Signature"),
        ("redirected to http://10.0.0.1:8080/a/b?c=secret", "http://10.0.0.1:8080", "secret"),
        ("s3://my-bucket/users/alice/photo.jpg does not exist", "s3://my-bucket", "alice"),
    ],
)
def test_logs_scrub_keeps_the_host_and_drops_paths_and_queries(message, kept, dropped):
    scrubbed = request_log.scrub(message)
    assert kept in scrubbed and dropped not in scrubbed
