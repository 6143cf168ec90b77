"""Log lines after the red team's round 2 (issue 18): no user-supplied URL or S3 key text in any logged message
(finding 4), a line for every request even with lone surrogates in it (5), and a 500's traceback inside its
request's line, under its request id (one logger)."""

from __future__ import annotations

import io
import json

import boto3
import pytest
from helpers import b64
from image_similarity.adapters import lambda_handler
from image_similarity.adapters.local_server import API_PATH
from image_similarity.adapters.wsgi import ServiceApp
from image_similarity.core.settings import FetchSettings
from image_similarity.sources.image_source import ImageSource
from moto import mock_aws

SECRET = "X-Amz-Signature=5ec12e7c0ffee"


def post(app: ServiceApp, body: bytes, request_id: str = "req-1") -> int:
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": API_PATH, "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body), "HTTP_X_REQUEST_ID": request_id}
    statuses: list[str] = []
    app(environ, lambda status, headers: statuses.append(status))
    return int(statuses[0].split()[0])


def lines_of(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_url_over_2048_characters_with_a_space_logs_no_query(service, captured):
    url = "https://bucket.s3.amazonaws.com/a b/" + "p" * 2100 + "?" + SECRET
    assert post(ServiceApp(service, API_PATH), json.dumps({"url": url}).encode()) == 400
    assert SECRET not in captured.getvalue() and "ppp" not in captured.getvalue()


@pytest.mark.parametrize("key", ["a b/secret-tail.jpg", "a\tb/secret-tail", "a\nb/secret-tail", "a'b/secret-tail",
                                 'a"b/secret-tail', "a%20b/secret-tail"])
def test_s3_keys_are_never_in_messages_or_logs(service, captured, key):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="photos")
        api = type(service)(service.embedder, ImageSource(FetchSettings(), s3_client=s3))
        assert post(ServiceApp(api, API_PATH), json.dumps({"url": f"s3://photos/{key}"}).encode()) == 422
    [line] = lines_of(captured)
    assert "secret-tail" not in line["error"] and "photos" in line["error"]


@pytest.mark.parametrize("body", ['{"\\ud800": 1}', '{"url": "http://a\\ud800b.example/x.jpg"}',
                                  '{"url_1": "https://[\\udfff]/", "img_2": "AAAA"}'])
def test_a_lone_surrogate_still_gets_its_log_line(service, captured, capsys, body):
    assert post(ServiceApp(service, API_PATH), body.encode()) in (400, 422)
    [line] = lines_of(captured)
    assert line["request_id"] == "req-1" and line["status"] in (400, 422)
    assert "Traceback" not in capsys.readouterr().err


def test_a_lone_surrogate_in_a_lambda_event_still_gets_its_log_line(service, captured, monkeypatch):
    monkeypatch.setattr(lambda_handler, "default_service", lambda: service)
    event = {"httpMethod": "POST", "path": "/\ud800", "body": '{"\\ud800": 1}', "requestContext": {"requestId": "r1"}}
    assert lambda_handler.handler(event)["statusCode"] == 400
    [line] = lines_of(captured)
    assert line["request_id"] == "r1"


def test_a_500s_traceback_is_in_its_request_line_under_its_request_id(service, captured, monkeypatch, cat_jpeg):
    def broken(_images):
        raise RuntimeError("model exploded at https://internal.example/a/b?" + SECRET)

    monkeypatch.setattr(service.embedder, "embed", broken)
    body = json.dumps({"img": b64(cat_jpeg)}).encode()
    assert post(ServiceApp(service, API_PATH), body, request_id="req-500") == 500
    [line] = lines_of(captured)
    assert line["request_id"] == "req-500" and line["level"] == "ERROR"
    assert "RuntimeError: model exploded" in line["traceback"] and "Traceback" in line["traceback"]
    assert SECRET not in line["traceback"]
