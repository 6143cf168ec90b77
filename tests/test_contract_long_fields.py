"""Request validation of long fields: the schema's verdict on megabytes of base64 without copying them."""

from __future__ import annotations

import json
import tracemalloc

import pytest
from image_similarity.core.contract import parse_request
from image_similarity.core.errors import RequestError

URL_LIMIT = 2048  # openapi.json, ImageUrl.maxLength


def test_url_at_the_length_limit_is_accepted_and_one_over_is_refused():
    url = "https://example.com/"
    assert parse_request(json.dumps({"url": url + "a" * (URL_LIMIT - len(url))})).images[0][0] == "url"
    with pytest.raises(RequestError) as refused:
        parse_request(json.dumps({"url": url + "a" * (URL_LIMIT + 5000)}))
    assert refused.value.status == 400


def test_long_pair_fields_keep_their_values_and_verdicts():
    img = "QUJD" * 300_000
    request = parse_request(json.dumps({"img_1": img, "url_2": "s3://bucket/key"}))
    assert request.images == (("img_1", img), ("url_2", "s3://bucket/key"))
    with pytest.raises(RequestError):  # one image of a pair is missing, however long the other
        parse_request(json.dumps({"img_1": img}))


def test_validating_a_large_pair_request_does_not_copy_its_body_again():
    body = json.dumps({"img_1": "QUJD" * 400_000, "img_2": "REVG" * 400_000}).encode()
    tracemalloc.start()
    try:
        parse_request(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # json.loads needs the body as text plus the decoded values: 2 x the body. jsonschema's oneOf messages used to
    # repr the whole request in every failing branch on top of that.
    assert peak < 2.5 * len(body)
