"""The Python client: against the local API server, SigV4 signing checked by a loopback server, retries, errors,
`from_stack` against a stubbed CloudFormation client (no AWS call), and the OpenAPI document that Postman imports."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

import boto3
import numpy as np
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.stub import Stubber
from helpers import b64
from image_similarity.client import ImageSimilarityClient, ImageSimilarityError, _SigV4Signer
from openapi_spec_validator import validate

CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")
REGION = "eu-west-1"
AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/(?P<date>\d{8})/eu-west-1/execute-api/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)
EMBEDDING = {"result": [0.0] * 511 + [1.0]}

Reply = tuple[int, dict]


class ScriptedServer:
    """A loopback HTTP server whose answer to each POST is computed by `answer(path, headers, body)`."""

    def __init__(self, answer: Callable[[str, dict[str, str], bytes], Reply]):
        self.requests: list[tuple[dict[str, str], bytes]] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = dict(self.headers)
                requests.append((headers, body))
                status, payload = answer(self.path, headers, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/prod/image-similarity"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[Callable[[Callable[[str, dict[str, str], bytes], Reply]], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(answer: Callable[[str, dict[str, str], bytes], Reply]) -> ScriptedServer:
        servers.append(ScriptedServer(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def fast_client(url: str, **options) -> ImageSimilarityClient:
    return ImageSimilarityClient(url, backoff=0.01, timeout=5, **options)


# --- against the real local server ---------------------------------------------------------------------------------


def test_embed_a_path_bytes_and_a_url_match_the_api(api_server, call, tmp_path, cat_jpeg, file_server):
    client = fast_client(f"{api_server}/image-similarity")
    (tmp_path / "cat.jpg").write_bytes(cat_jpeg)
    file_server.routes["/cat.jpg"] = (200, {"Content-Type": "image/jpeg"}, cat_jpeg)
    expected = call({"img": b64(cat_jpeg)})[1]["result"]
    for image in (tmp_path / "cat.jpg", str(tmp_path / "cat.jpg"), cat_jpeg, file_server.url("/cat.jpg")):
        vector = client.embed(image)
        assert vector.dtype == np.float32 and vector.tolist() == expected
    assert client.model_version


def test_similarity_matches_the_api(api_server, call, cat_jpeg, coffee_png):
    client = fast_client(f"{api_server}/image-similarity")
    expected = call({"img_1": b64(cat_jpeg), "img_2": b64(coffee_png)})[1]["similarity"]
    assert client.similarity(cat_jpeg, coffee_png) == expected
    assert client.similarity(cat_jpeg, cat_jpeg) == pytest.approx(1.0, abs=1e-6)


def test_a_4xx_raises_with_the_apis_message_and_is_not_retried(api_server):
    client = fast_client(f"{api_server}/image-similarity")
    with pytest.raises(ImageSimilarityError) as caught:
        client.embed(b"plain text, not an image")
    assert caught.value.status == 422
    assert "JPEG, PNG or BMP" in caught.value.message


def test_a_4xx_from_another_server_is_raised_once(scripted):
    server = scripted(lambda *_: (400, {"message": "`url` must be an http://, https:// or s3:// URL"}))
    with pytest.raises(ImageSimilarityError, match="must be an http"):
        fast_client(server.url).embed("s3://bucket/key.jpg")
    assert len(server.requests) == 1
    assert json.loads(server.requests[0][1]) == {"url": "s3://bucket/key.jpg"}


# --- retries -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503])
def test_throttling_and_server_errors_are_retried(scripted, status):
    replies = iter([(status, {"message": "Too Many Requests"}), (200, EMBEDDING)])
    server = scripted(lambda *_: next(replies))
    assert fast_client(server.url).embed(b"\xff\xd8\xff").tolist() == EMBEDDING["result"]
    assert len(server.requests) == 2
    assert server.requests[0][1] == server.requests[1][1]


def test_retries_give_up_with_the_last_answer(scripted):
    server = scripted(lambda *_: (429, {"message": "Rate exceeded"}))
    with pytest.raises(ImageSimilarityError) as caught:
        fast_client(server.url, retries=2).embed(b"\xff\xd8\xff")
    assert (caught.value.status, caught.value.message) == (429, "Rate exceeded")
    assert len(server.requests) == 3


def test_no_server_is_an_error_after_retries():
    client = fast_client("http://127.0.0.1:9/image-similarity", retries=1)  # port 9 (discard): nothing listens
    with pytest.raises(ImageSimilarityError, match="no answer") as caught:
        client.embed(b"\xff\xd8\xff")
    assert caught.value.status is None


# --- SigV4 ---------------------------------------------------------------------------------------------------------


def check_sigv4(url: str, headers: dict[str, str], body: bytes) -> str | None:
    """What API Gateway would say about the signature, or None if it is valid (recomputed with the same key)."""
    match = AUTHORIZATION.match(headers.get("Authorization", ""))
    if not match:
        return "Missing Authentication Token"
    signed = match["signed"].split(";")
    if not {"host", "x-amz-date", "x-amz-security-token"} <= set(signed):
        return "host, x-amz-date and x-amz-security-token must be signed"
    if headers.get("X-Amz-Security-Token") != CREDENTIALS.token:
        return "The security token included in the request is invalid"
    amz_date = headers["X-Amz-Date"]
    if (
        abs((datetime.now(UTC) - datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)).total_seconds())
        > 300
    ):
        return "Signature expired"
    received = {name.lower(): value for name, value in headers.items()}
    request = AWSRequest(method="POST", url=url, data=body, headers={name: received[name] for name in signed})
    request.context["timestamp"] = amz_date
    auth = SigV4Auth(CREDENTIALS.get_frozen_credentials(), "execute-api", REGION)
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    return None if expected == match["signature"] else "The request signature we calculated does not match"


@pytest.fixture
def iam_server(scripted) -> ScriptedServer:
    holder: list[ScriptedServer] = []

    def answer(path: str, headers: dict[str, str], body: bytes) -> Reply:
        problem = check_sigv4(holder[0].url.split("/prod")[0] + path, headers, body)
        return (403, {"message": problem}) if problem else (200, EMBEDDING)

    holder.append(scripted(answer))
    return holder[0]


def test_iam_requests_carry_a_valid_sigv4_signature(iam_server):
    client = fast_client(iam_server.url, iam=True, region=REGION, credentials=CREDENTIALS)
    assert client.embed(b"\xff\xd8\xff").tolist() == EMBEDDING["result"]
    client.embed(b"\x89PNG\r\n\x1a\n")  # a new body, a new signature
    (first, _), (second, _) = iam_server.requests
    assert first["Authorization"] != second["Authorization"]


def test_unsigned_requests_to_an_iam_api_surface_its_message(iam_server):
    with pytest.raises(ImageSimilarityError) as caught:
        fast_client(iam_server.url).embed(b"\xff\xd8\xff")
    assert (caught.value.status, caught.value.message) == (403, "Missing Authentication Token")


def test_a_signature_with_the_wrong_key_is_refused(iam_server):
    wrong = Credentials(CREDENTIALS.access_key, "not-the-secret", CREDENTIALS.token)
    with pytest.raises(ImageSimilarityError, match="does not match"):
        fast_client(iam_server.url, iam=True, region=REGION, credentials=wrong).embed(b"\xff\xd8\xff")


def test_the_region_comes_from_an_execute_api_url():
    signer = _SigV4Signer(
        "https://a1b2c3.execute-api.ap-southeast-2.amazonaws.com/prod/image-similarity", None, CREDENTIALS
    )
    assert signer.region == "ap-southeast-2"


# --- from_stack ----------------------------------------------------------------------------------------------------


def stubbed_cloudformation(outputs: dict[str, str], authorization: str) -> tuple[object, Stubber]:
    cloudformation = boto3.client(
        "cloudformation", region_name=REGION, aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret"
    )
    stubber = Stubber(cloudformation)
    stack = {
        "StackName": "images",
        "CreationTime": datetime(2025, 1, 1, tzinfo=UTC),
        "StackStatus": "UPDATE_COMPLETE",
        "Parameters": [
            {"ParameterKey": "APIGatewayAuthorization", "ParameterValue": authorization},
            {"ParameterKey": "ImageSimilarity", "ParameterValue": "yes"},
        ],
        "Outputs": [{"OutputKey": key, "OutputValue": value} for key, value in outputs.items()],
    }
    stubber.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": "images"})
    stubber.activate()
    return cloudformation, stubber


def test_from_stack_reads_the_image_similarity_output_and_signs_for_aws_iam():
    url = "https://a1b2c3.execute-api.eu-west-1.amazonaws.com/prod/image-similarity"
    outputs = {"ImageSimilarity": url, "ApiStageUrl": "https://a1b2c3.execute-api.eu-west-1.amazonaws.com/prod/"}
    cloudformation, stubber = stubbed_cloudformation(outputs, "AWS_IAM")
    client = ImageSimilarityClient.from_stack("images", cloudformation=cloudformation, credentials=CREDENTIALS)
    stubber.assert_no_pending_responses()
    assert client.url == url
    assert client._signer is not None and client._signer.region == REGION


def test_from_stack_without_authorization_does_not_sign(scripted):
    server = scripted(lambda *_: (200, EMBEDDING))
    cloudformation, _ = stubbed_cloudformation({"ImageSimilarity": server.url}, "NONE")
    client = ImageSimilarityClient.from_stack("images", cloudformation=cloudformation)
    client.embed(b"\xff\xd8\xff")
    assert "Authorization" not in server.requests[0][0]


def test_from_stack_without_the_output_says_why():
    cloudformation, _ = stubbed_cloudformation(
        {"ApiStageUrl": "https://x.execute-api.eu-west-1.amazonaws.com/"}, "NONE"
    )
    with pytest.raises(ImageSimilarityError, match="ImageSimilarity parameter set to yes"):
        ImageSimilarityClient.from_stack("images", cloudformation=cloudformation)


# --- the OpenAPI document ------------------------------------------------------------------------------------------


def test_the_openapi_document_is_valid_for_postman_and_code_generators():
    document = json.loads(resources.files("image_similarity").joinpath("openapi.json").read_text())
    validate(document)  # raises OpenAPIValidationError with the offending path
    assert "/image-similarity" in document["paths"]
