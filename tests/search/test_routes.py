"""The collection routes' core (search/api.py): answers, and a clear 4xx for every bad input."""

from __future__ import annotations

import json

import pytest
from helpers import b64
from image_similarity.core.settings import MAX_BODY_BYTES
from search_helpers import unit_rows


def call(routes, method: str, path: str, payload=None) -> tuple[int, dict]:
    body = None if payload is None else payload if isinstance(payload, str | bytes) else json.dumps(payload)
    response = routes.handle(method, path, body)
    return response.status, response.body


def vector_items(count: int, seed: int = 0, start: int = 0) -> list[dict]:
    return [{"id": f"v{start + i}", "vector": row.tolist()} for i, row in enumerate(unit_rows(count, seed))]


def test_add_search_describe_and_delete_through_the_routes(routes, service):
    assert call(routes, "POST", "/collections/shop/items", {"items": vector_items(5)}) == (
        200, {"added": 5, "model_version": service.model_version})
    status, body = call(routes, "POST", "/collections/shop/search",
                        {"vector": unit_rows(5)[2].tolist(), "k": 2})
    assert status == 200 and body["model_version"] == service.model_version
    assert body["matches"][0] == {"id": "v2", "similarity": 1.0, "metadata": {}}
    assert call(routes, "GET", "/collections/shop") == (
        200, {"name": "shop", "count": 5, "model_version": service.model_version})
    assert call(routes, "DELETE", "/collections/shop/items/v2") == (200, {"deleted": "v2"})
    assert call(routes, "GET", "/collections/shop")[1]["count"] == 4
    assert call(routes, "DELETE", "/collections/shop") == (200, {"deleted": "shop"})
    assert call(routes, "GET", "/collections/shop")[0] == 404


def test_images_are_embedded_as_pair_mode_does_and_scored_on_its_scale(routes, call_pair, cat_jpeg, coffee_png):
    items = [{"id": "cat", "img": b64(cat_jpeg), "metadata": {"kind": "cat"}}, {"id": "coffee", "img": b64(coffee_png)}]
    assert call(routes, "POST", "/collections/photos/items", {"items": items})[0] == 200
    status, body = call(routes, "POST", "/collections/photos/search", {"img": b64(coffee_png), "k": 2})
    assert status == 200
    assert [m["id"] for m in body["matches"]] == ["coffee", "cat"]
    assert body["matches"][0]["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert body["matches"][1]["similarity"] == pytest.approx(call_pair(cat_jpeg, coffee_png), abs=1e-5)
    assert body["matches"][1]["metadata"] == {"kind": "cat"}


@pytest.fixture
def call_pair(service):
    def similarity(a: bytes, b: bytes) -> float:
        return service.handle(json.dumps({"img_1": b64(a), "img_2": b64(b)})).body["similarity"]
    return similarity


def test_images_by_url_are_fetched_under_the_apis_rules(routes, file_server, cat_jpeg):
    file_server.routes["/cat.jpg"] = (200, {"Content-Type": "image/jpeg"}, cat_jpeg)
    item = {"id": "cat", "url": file_server.url("/cat.jpg")}
    assert call(routes, "POST", "/collections/photos/items", {"items": [item]})[0] == 200
    status, body = call(routes, "POST", "/collections/photos/search", {"url": file_server.url("/cat.jpg")})
    assert status == 200 and body["matches"][0]["id"] == "cat"


def test_vectors_are_normalised_on_arrival(routes):
    row = unit_rows(1)[0]
    call(routes, "POST", "/collections/shop/items", {"items": [{"id": "a", "vector": (row * 40).tolist()}]})
    status, body = call(routes, "POST", "/collections/shop/search", {"vector": (row * 1e-3).tolist()})
    assert status == 200 and body["matches"][0]["similarity"] == pytest.approx(1.0, abs=1e-6)


def test_huge_but_finite_values_are_normalised_without_overflow(routes):
    vector = [1e300] * 512
    assert call(routes, "POST", "/collections/shop/items", {"items": [{"id": "a", "vector": vector}]})[0] == 200
    status, body = call(routes, "POST", "/collections/shop/search", {"vector": [1.0] * 512})
    assert status == 200 and body["matches"][0]["similarity"] == pytest.approx(1.0, abs=1e-6)


def test_min_similarity_and_k_shape_the_answer(routes):
    call(routes, "POST", "/collections/shop/items", {"items": vector_items(30)})
    query = unit_rows(30)[4].tolist()
    assert len(call(routes, "POST", "/collections/shop/search", {"vector": query})[1]["matches"]) == 10
    assert len(call(routes, "POST", "/collections/shop/search", {"vector": query, "k": 3})[1]["matches"]) == 3
    matches = call(routes, "POST", "/collections/shop/search", {"vector": query, "min_similarity": 0.9})[1]
    assert [m["id"] for m in matches["matches"]] == ["v4"]


def test_vectors_of_another_model_version_are_refused_with_409_saying_how_to_rebuild(routes, service):
    call(routes, "POST", "/collections/shop/items", {"items": vector_items(2)})
    for path, payload in [("/collections/shop/items", {"items": vector_items(1), "model_version": "other-v9"}),
                          ("/collections/shop/search", {"vector": unit_rows(1)[0].tolist(),
                                                        "model_version": "other-v9"})]:
        status, body = call(routes, "POST", path, payload)
        assert status == 409
        assert service.model_version in body["message"] and "DELETE /collections/shop" in body["message"]


def test_a_collection_built_by_another_model_refuses_images_of_this_one(routes, cat_jpeg):
    call(routes, "POST", "/collections/old/items", {"items": vector_items(2), "model_version": "old-v1"})
    status, body = call(routes, "POST", "/collections/old/search", {"img": b64(cat_jpeg)})
    assert status == 409 and "old-v1" in body["message"]
    status, body = call(routes, "POST", "/collections/old/items",
                        {"items": [{"id": "x", "img": b64(cat_jpeg)}], "model_version": "old-v1"})
    assert status == 409 and "images are embedded with this service's model" in body["message"]


GOOD = unit_rows(1)[0].tolist()
BAD_REQUESTS = {
    "name too short": ("POST", "/collections/ab/items", {"items": [{"id": "a", "vector": GOOD}]}, "collection name"),
    "name too long": ("GET", "/collections/" + "a" * 64, None, "collection name"),
    "name with capitals": ("GET", "/collections/Photos", None, "collection name"),
    "name with underscore": ("GET", "/collections/my_photos", None, "collection name"),
    "name ending in hyphen": ("GET", "/collections/photos-", None, "collection name"),
    "empty name": ("GET", "/collections/", None, "collection name"),
    "no items": ("POST", "/collections/shop/items", {"items": []}, "give 1 to 500 items, not 0"),
    "501 items": ("POST", "/collections/shop/items",
                  {"items": [{"id": str(i), "vector": GOOD} for i in range(501)]}, "give 1 to 500 items, not 501"),
    "items not a list": ("POST", "/collections/shop/items", {"items": {"id": "a"}}, "must be of type array"),
    "item without image": ("POST", "/collections/shop/items", {"items": [{"id": "a"}]}, "exactly one of"),
    "item with two images": ("POST", "/collections/shop/items", {"items": [{"id": "a", "vector": GOOD,
                                                                            "url": "https://x.example/a.jpg"}]},
                             "not url and vector"),
    "item without id": ("POST", "/collections/shop/items", {"items": [{"vector": GOOD}]}, "'id' is a required"),
    "empty id": ("POST", "/collections/shop/items", {"items": [{"id": "", "vector": GOOD}]}, "items/0/id"),
    "unknown item field": ("POST", "/collections/shop/items", {"items": [{"id": "a", "vector": GOOD, "x": 1}]},
                           "'x' was unexpected"),
    "short vector": ("POST", "/collections/shop/items", {"items": [{"id": "a", "vector": [0.1] * 511}]},
                     "items/0/vector must be a list of 512 numbers"),
    "long vector": ("POST", "/collections/shop/search", {"vector": [0.1] * 513}, "not 513 values"),
    "vector of strings": ("POST", "/collections/shop/search", {"vector": ["0.1"] * 512}, "numbers only"),
    "vector of booleans": ("POST", "/collections/shop/search", {"vector": [True] * 512}, "numbers only"),
    "vector not a list": ("POST", "/collections/shop/search", {"vector": "0.1,0.2"}, "not a str"),
    "zero vector": ("POST", "/collections/shop/search", {"vector": [0] * 512}, "all zeros"),
    "NaN in vector": ("POST", "/collections/shop/search", '{"vector": [NaN' + ", 0.1" * 511 + "]}", "finite"),
    "Infinity in vector": ("POST", "/collections/shop/search", '{"vector": [Infinity' + ", 0.1" * 511 + "]}",
                           "finite"),
    "overflowing number": ("POST", "/collections/shop/search", '{"vector": [1e999' + ", 0.1" * 511 + "]}",
                           "finite"),
    "k zero": ("POST", "/collections/shop/search", {"vector": GOOD, "k": 0}, "(k): must be between 1 and 100"),
    "k 101": ("POST", "/collections/shop/search", {"vector": GOOD, "k": 101}, "(k): must be between 1 and 100"),
    "k not integer": ("POST", "/collections/shop/search", {"vector": GOOD, "k": 2.5}, "(k): must be of type integer"),
    "min_similarity above 1": ("POST", "/collections/shop/search", {"vector": GOOD, "min_similarity": 1.5},
                               "between 0 and 1"),
    "search without query": ("POST", "/collections/shop/search", {"k": 3}, "exactly one of"),
    "search with two queries": ("POST", "/collections/shop/search", {"vector": GOOD, "img": "aGk="}, "not img and "),
    "metadata not an object": ("POST", "/collections/shop/items", {"items": [{"id": "a", "vector": GOOD,
                                                                              "metadata": [1]}]}, "metadata"),
    "nested metadata": ("POST", "/collections/shop/items", {"items": [{"id": "a", "vector": GOOD,
                                                                       "metadata": {"a": {"b": 1}}}]}, "metadata/a"),
    "11 metadata keys": ("POST", "/collections/shop/items",
                         {"items": [{"id": "a", "vector": GOOD, "metadata": {str(i): i for i in range(11)}}]},
                         "metadata"),
    "not JSON": ("POST", "/collections/shop/search", "{vector", "not valid JSON"),
    "JSON not an object": ("POST", "/collections/shop/search", "[1, 2]", "must be of type object"),
    "empty body": ("POST", "/collections/shop/search", "", "empty"),
    "url not a URL": ("POST", "/collections/shop/search", {"url": "file:///etc/passwd"}, "(url)"),
    "bad base64": ("POST", "/collections/shop/search", {"img": "***"}, "base64"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests_get_400_saying_what_is_wrong(routes, case):
    method, path, payload, words = BAD_REQUESTS[case]
    call(routes, "POST", "/collections/shop/items", {"items": vector_items(1)})
    status, body = call(routes, method, path, payload)
    assert status == 400, body
    assert words in body["message"]
    assert len(body["message"]) < 400


def test_metadata_over_the_stated_limit_is_413(routes):
    item = {"id": "a", "vector": GOOD, "metadata": {"note": "x" * 2100}}
    status, body = call(routes, "POST", "/collections/shop/items", {"items": [item]})
    assert status == 413 and "2048" in body["message"] and "items/0/metadata" in body["message"]


def test_metadata_at_the_limit_is_kept(routes):
    note = "x" * (2048 - len('{"note":""}'))
    item = {"id": "a", "vector": GOOD, "metadata": {"note": note}}
    assert call(routes, "POST", "/collections/shop/items", {"items": [item]})[0] == 200
    status, body = call(routes, "POST", "/collections/shop/search", {"vector": GOOD, "k": 1})
    assert status == 200 and body["matches"][0]["metadata"] == {"note": note}


def test_body_over_the_limit_is_413(routes):
    status, body = call(routes, "POST", "/collections/shop/items", b" " * (MAX_BODY_BYTES + 1))
    assert status == 413 and str(MAX_BODY_BYTES) in body["message"]


def test_unusable_image_is_422_naming_the_item(routes, cat_jpeg):
    items = [{"id": "ok", "img": b64(cat_jpeg)}, {"id": "bad", "img": b64(b"not an image at all")}]
    status, body = call(routes, "POST", "/collections/shop/items", {"items": items})
    assert status == 422 and body["message"].startswith("items/1:")
    assert call(routes, "GET", "/collections/shop")[0] == 404  # nothing of a refused request is written


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/collections/shop/items", 405), ("PUT", "/collections/shop", 405),
    ("GET", "/collections/shop/search", 405), ("POST", "/collections/shop/items/a", 405),
    ("GET", "/collections/shop/other", 404), ("DELETE", "/collections/shop/items/missing", 404),
    ("GET", "/collections/missing", 404), ("POST", "/collections/missing/search", 404),
    ("DELETE", "/collections/missing", 404),
])
def test_wrong_methods_and_unknown_names_get_their_4xx(routes, method, path, status):
    call(routes, "POST", "/collections/shop/items", {"items": vector_items(1)})
    payload = {"vector": GOOD} if method == "POST" else None
    answer_status, body = call(routes, method, path, payload)
    assert answer_status == status and body["message"]


def test_ids_may_hold_slashes_and_any_characters(routes):
    items = [{"id": "albums/2024/été.jpg", "vector": GOOD}]
    assert call(routes, "POST", "/collections/shop/items", {"items": items})[0] == 200
    assert call(routes, "DELETE", "/collections/shop/items/albums/2024/été.jpg")[0] == 200


def test_a_fault_in_the_store_is_a_500_without_details(routes, monkeypatch):
    monkeypatch.setattr(routes.store, "describe", lambda name: 1 / 0)
    status, body = call(routes, "GET", "/collections/shop")
    assert status == 500 and "division" not in body["message"]
