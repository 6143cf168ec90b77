"""The OpenAPI document and the running service agree: every example is answered as documented, and every body the
document rejects is rejected by the service."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import jsonschema
import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from image_similarity.core.contract import openapi_document
from image_similarity.core.errors import RequestError
from image_similarity.core.service import ImageSimilarityService
from image_similarity.core.settings import MAX_BODY_BYTES, FetchSettings
from image_similarity.sources.image_source import ImageSource, decode_base64
from openapi_spec_validator import validate

DOC = openapi_document()
OPERATION = DOC["paths"]["/image-similarity"]["post"]
REQUEST_EXAMPLES = OPERATION["requestBody"]["content"]["application/json"]["examples"]
RESPONSES = OPERATION["responses"]
# Errors the document shows that the service's request handling does not make, and who makes them instead.
NOT_FROM_A_REQUEST = {("403", "unsigned"): "API Gateway", ("429", "throttled"): "API Gateway",
                      ("504", "timeout"): "API Gateway", ("500", "internal"): "the service, on a fault of its own",
                      ("429", "fetch_slots_busy"): "a server worker whose URL-fetching slots are all busy"}
FIELDS = ("url", "img", "url_1", "img_1", "url_2", "img_2")


def schema_for(ref: str) -> dict:
    return {"$ref": ref, "components": DOC["components"]}


def response_examples(status: str) -> dict[str, dict]:
    return RESPONSES[status]["content"]["application/json"].get("examples", {})


def resolve(pointer: str) -> dict:
    node = DOC
    for part in pointer.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def documented_answer(example_name: str) -> dict:
    """The 200 example whose `x-answers` names this request example."""
    ref = f"#/paths/~1image-similarity/post/requestBody/content/application~1json/examples/{example_name}"
    (answer,) = [e["value"] for e in response_examples("200").values() if ref in e["x-answers"]]
    return answer


def assert_same_answer(got: dict, documented: dict) -> None:
    assert got.keys() == documented.keys()
    if "result" in got:
        assert len(got["result"]) == 512
        np.testing.assert_allclose(got["result"], documented["result"], atol=1e-5)
    else:
        assert got["similarity"] == pytest.approx(documented["similarity"], abs=1e-4)


def post(api_server: str, body: bytes | str | dict) -> requests.Response:
    data = json.dumps(body) if isinstance(body, dict) else body
    return requests.post(f"{api_server}/image-similarity", data=data, timeout=30,
                         headers={"Content-Type": "application/json"})


def test_document_is_valid_openapi_and_its_examples_fit_its_schemas():
    validate(DOC)
    request = jsonschema.Draft202012Validator(schema_for("#/components/schemas/ImageSimilarityRequest"))
    for example in REQUEST_EXAMPLES.values():
        request.validate(example["value"])
    for status, response in RESPONSES.items():
        media = response["content"]["application/json"]
        validator = jsonschema.Draft202012Validator({**media["schema"], "components": DOC["components"]})
        assert media.get("examples"), f"status {status} has no example"
        for example in media["examples"].values():
            validator.validate(example["value"])


def test_each_mode_has_a_base64_and_a_url_example_with_a_small_real_image():
    kinds = {(frozenset(e["value"]), "url" in next(iter(e["value"]))) for e in REQUEST_EXAMPLES.values()}
    assert kinds >= {(frozenset({"img"}), False), (frozenset({"url"}), True),
                     (frozenset({"img_1", "img_2"}), False), (frozenset({"url_1", "url_2"}), True)}
    for example in REQUEST_EXAMPLES.values():
        for name, value in example["value"].items():
            if name.startswith("img"):
                raw = decode_base64(value)
                assert raw.startswith(b"\xff\xd8\xff") and len(raw) < 4096, "a small real JPEG"


@pytest.mark.parametrize("name", [n for n, e in REQUEST_EXAMPLES.items() if "img" in "".join(e["value"])])
def test_base64_examples_are_answered_as_documented(api_server, name):
    response = post(api_server, REQUEST_EXAMPLES[name]["value"])
    assert response.status_code == 200, response.text
    assert_same_answer(response.json(), documented_answer(name))


@pytest.mark.parametrize("name", [n for n, e in REQUEST_EXAMPLES.items() if "url" in "".join(e["value"])])
def test_url_examples_are_answered_as_documented_when_their_host_serves_the_example_images(
        api_server, file_server, name):
    """The examples' host can't be reached from here: a loopback server stands in for it, at the same paths."""
    examples = REQUEST_EXAMPLES["two_images_base64"]["value"].values()
    images = {f"/photos/{n}": decode_base64(v) for n, v in zip(("cat.jpg", "cat-mirrored.jpg"), examples, strict=True)}
    for path, raw in images.items():
        file_server.routes[path] = (200, {"Content-Type": "image/jpeg"}, raw)
    body = {}
    for field, url in REQUEST_EXAMPLES[name]["value"].items():
        assert urlsplit(url).path in images, url
        body[field] = file_server.url(urlsplit(url).path)
    response = post(api_server, body)
    assert response.status_code == 200, response.text
    assert_same_answer(response.json(), documented_answer(name))


@pytest.mark.parametrize(("status", "name"), [(s, n) for s in RESPONSES if s != "200"
                                              for n, e in response_examples(s).items() if "x-request" in e])
def test_error_examples_are_answered_as_documented(api_server, status, name):
    example = response_examples(status)[name]
    response = post(api_server, example["x-request"])
    assert (response.status_code, response.json()) == (int(status), example["value"])


def test_every_other_error_example_is_accounted_for():
    """Each example without an `x-request` is checked by one of the tests below, or made outside the service."""
    checked_below = {("403", "bucket_not_allowed"), ("413", "too_large"), ("422", "unreachable")}
    literal = {(s, n) for s in RESPONSES if s != "200" for n, e in response_examples(s).items() if "x-request" not in e}
    assert literal == checked_below | set(NOT_FROM_A_REQUEST)


def test_body_over_the_limit_is_answered_as_documented(api_server):
    response = post(api_server, b"{" + b" " * MAX_BODY_BYTES + b"}")
    assert (response.status_code, response.json()) == (413, response_examples("413")["too_large"]["value"])


def test_unreachable_url_is_answered_as_documented(api_server, file_server):
    response = post(api_server, {"url": file_server.url("/photos/missing.jpg")})
    assert (response.status_code, response.json()) == (422, response_examples("422")["unreachable"]["value"])


def test_bucket_outside_the_allowed_list_is_answered_as_documented():
    source = ImageSource(FetchSettings(allowed_buckets=frozenset({"my-bucket"})))
    with pytest.raises(RequestError) as caught:
        source.read("url", "s3://someone-elses-bucket/cat.jpg")
    assert (caught.value.status, {"message": caught.value.message}) == (
        403, response_examples("403")["bucket_not_allowed"]["value"])


def test_internal_fault_is_answered_as_documented(service):
    class BrokenEmbedder:
        info = service.embedder.info
        input_size = service.embedder.input_size

        def embed(self, batch):
            raise RuntimeError("model exploded")

    broken = ImageSimilarityService(BrokenEmbedder(), service.source)  # type: ignore[arg-type]
    response = broken.handle(json.dumps(REQUEST_EXAMPLES["one_image_base64"]["value"]))
    assert (response.status, response.body) == (500, response_examples("500")["internal"]["value"])


# Bodies near the valid ones: known and unknown fields, strings that are and aren't URLs, other JSON types.
json_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.just(""),
    st.text(st.characters(blacklist_characters=":"), max_size=8),  # no URL: nothing may be fetched
    st.sampled_from(["s3://", "http://", "ftp://example.com/a.jpg", "HTTPS://", "data:image/png;base64,"]),
    st.lists(st.integers(), max_size=2),
)
bodies = st.one_of(
    st.dictionaries(st.sampled_from((*FIELDS, "image", "URL", "img_3")), json_values, max_size=4),
    json_values,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_bodies_the_document_rejects_are_rejected_by_the_service(api_server, body):
    validator = jsonschema.Draft202012Validator(schema_for("#/components/schemas/ImageSimilarityRequest"))
    response = post(api_server, json.dumps(body))
    assert 400 <= response.status_code < 500, response.text
    assert isinstance(response.json()["message"], str) and response.json()["message"]
    if not validator.is_valid(body):
        assert response.status_code == 400, (body, response.text)
