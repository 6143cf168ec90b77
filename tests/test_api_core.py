"""The API core: both modes of the SPEC and every error case, answered with a status and a JSON body."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import b64, encode
from image_similarity.core.service import similarity
from image_similarity.core.settings import MAX_BODY_BYTES
from PIL import Image


def test_single_mode_returns_512_unit_floats(call, cat_jpeg):
    status, body = call({"img": b64(cat_jpeg)})
    assert status == 200
    assert set(body) == {"result"}
    vector = np.array(body["result"])
    assert vector.shape == (512,)
    assert abs(np.linalg.norm(vector) - 1.0) < 1e-4


def test_pair_mode_returns_similarity_of_the_two_embeddings(call, cat_jpeg, coffee_png):
    _, a = call({"img": b64(cat_jpeg)})
    _, b = call({"img": b64(coffee_png)})
    status, body = call({"img_1": b64(cat_jpeg), "img_2": b64(coffee_png)})
    assert status == 200 and set(body) == {"similarity"}
    expected = 0.5 + 0.5 * float(np.dot(a["result"], b["result"]))
    assert body["similarity"] == pytest.approx(expected, abs=1e-5)
    assert 0.0 <= body["similarity"] <= 1.0


def test_identical_images_score_one(call, cat_jpeg):
    _, body = call({"img_1": b64(cat_jpeg), "img_2": b64(cat_jpeg)})
    assert body["similarity"] == pytest.approx(1.0, abs=1e-5)


def test_same_photo_reencoded_or_resized_scores_clearly_above_different_photos(call, photos):
    def score(x: bytes, y: bytes) -> float:
        status, body = call({"img_1": b64(x), "img_2": b64(y)})
        assert status == 200
        return body["similarity"]

    same, different = [], []
    for name, pixels in photos.items():
        original = encode(pixels, "PNG")
        small = Image.fromarray(pixels).resize((pixels.shape[1] // 3, pixels.shape[0] // 3))
        same.append(score(original, encode(pixels, "JPEG", quality=25)))
        same.append(score(original, encode(small, "BMP")))
        for other, other_pixels in photos.items():
            if other > name:
                different.append(score(original, encode(other_pixels, "PNG")))
    assert min(same) > 0.9
    assert min(same) - max(different) > 0.1, (sorted(same)[:3], sorted(different)[-3:])


def test_similarity_is_clipped_to_unit_interval():
    v = np.ones(4, dtype=np.float32) / 2
    assert similarity(v, v) == 1.0
    assert similarity(v, -v) == 0.0


def test_url_and_img_can_be_mixed_in_pair_mode(call, file_server, cat_jpeg):
    file_server.routes["/cat.jpg"] = (200, {"Content-Type": "image/jpeg"}, cat_jpeg)
    status, body = call({"url_1": file_server.url("/cat.jpg"), "img_2": b64(cat_jpeg)})
    assert status == 200
    assert body["similarity"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    "payload, status, words",
    [
        ({"url": "https://example.com/a.jpg", "img": "aGk="}, 400, "not both"),
        ({}, 400, "empty"),
        ({"url_1": "https://example.com/a.jpg"}, 400, "`url_2` or `img_2`"),
        ({"img_2": "aGk="}, 400, "`url_1` or `img_1`"),
        ({"img_1": "aGk=", "img_2": "aGk=", "img": "aGk="}, 400, "mix"),
        ({"image": "aGk="}, 400, "unknown field"),
        ({"url": 42}, 400, "must be a string"),
        ({"img": ""}, 400, "empty"),
        ({"url": "ftp://example.com/a.jpg"}, 400, "http://, https:// or s3://"),
        ({"url": "file:///etc/passwd"}, 400, "http://, https:// or s3://"),
        ({"img": "not base64!!"}, 400, "base64"),
        ({"img": "a"}, 400, "base64"),
        ({"img": b64(b"GIF89a" + b"\0" * 40)}, 422, "JPEG, PNG or BMP"),
        ({"img": b64(b"hello, world")}, 422, "JPEG, PNG or BMP"),
        ({"url": "s3://No_Such-Bucket/key.jpg"}, 400, "bucket name"),
        ({"url": "s3://bucket-only"}, 400, "object key"),
    ],
)
def test_bad_requests_get_4xx_with_a_message(call, payload, status, words):
    got_status, body = call(payload)
    assert got_status == status, body
    assert set(body) == {"message"}
    assert words in body["message"]


@pytest.mark.parametrize("raw", ["", "not json", "[1, 2]", '"url"', "null", "{", "[" * 50_000])
def test_body_that_is_not_a_json_object_gets_400(service, raw):
    response = service.handle(raw)
    assert response.status == 400
    assert "message" in response.body


def test_body_over_the_limit_gets_413(service):
    response = service.handle(b"x" * (MAX_BODY_BYTES + 1))
    assert response.status == 413
    assert str(MAX_BODY_BYTES) in response.body["message"]


def test_image_over_4096_px_is_refused_with_the_limit(call):
    tall = encode(Image.new("RGB", (8, 4097)), "PNG")
    status, body = call({"img": b64(tall)})
    assert status == 422
    assert "4096" in body["message"]


def test_truncated_image_gets_422(call, cat_jpeg):
    status, body = call({"img": b64(cat_jpeg[: len(cat_jpeg) // 2])})
    assert status == 422
    assert "could not be decoded" in body["message"]


def test_response_bodies_are_json_serialisable(call, cat_jpeg):
    _, body = call({"img": b64(cat_jpeg)})
    assert json.loads(json.dumps(body)) == body
