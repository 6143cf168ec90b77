"""The collection routes through the adapters: the local server (waitress, as `image-similarity serve` builds it) and
the Lambda handler with API Gateway proxy events give the core's answers; logs carry the route, never an item id."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests
import waitress.server
from image_similarity.adapters import lambda_handler
from image_similarity.adapters.explorer_page import ExplorerConfig
from image_similarity.adapters.local_server import local_app
from image_similarity.search import stores
from image_similarity.search.api import CollectionRoutes
from image_similarity.search.local_store import LocalStore
from search_helpers import unit_rows

ODD_ID = "albums/2024/été #1.jpg"


@pytest.fixture
def local_server(service, tmp_path, monkeypatch) -> Iterator[str]:
    monkeypatch.setenv("IMAGE_SIMILARITY_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("IMAGE_SEARCH_VECTOR_BUCKET", raising=False)
    server = waitress.server.create_server(local_app(service, ExplorerConfig()), host="127.0.0.1", port=0)
    threading.Thread(target=server.run, daemon=True).start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()


def test_local_server_serves_the_collection_routes_from_the_data_dir(local_server, tmp_path, service):
    items = [{"id": ODD_ID, "vector": unit_rows(1)[0].tolist(), "metadata": {"a": 1}}]
    added = requests.post(f"{local_server}/collections/photos/items", json={"items": items}, timeout=30)
    assert added.status_code == 200 and added.json()["added"] == 1
    assert added.headers["X-Model-Version"] == service.model_version
    found = requests.post(f"{local_server}/collections/photos/search", json={"vector": items[0]["vector"]}, timeout=30)
    assert found.json()["matches"][0]["id"] == ODD_ID
    assert (tmp_path / "collections.sqlite3").exists()
    gone = requests.delete(f"{local_server}/collections/photos/items/{quote(ODD_ID)}", timeout=30)
    assert gone.status_code == 200 and gone.json() == {"deleted": ODD_ID}
    info = requests.get(f"{local_server}/collections/photos", timeout=30)
    assert info.json() == {"name": "photos", "count": 0, "model_version": service.model_version}


def test_local_server_answers_409_with_its_reason_phrase(local_server):
    vector = unit_rows(1)[0].tolist()
    requests.post(f"{local_server}/collections/photos/items", json={"items": [{"id": "a", "vector": vector}]},
                  timeout=30)
    answer = requests.post(f"{local_server}/collections/photos/search",
                           json={"vector": vector, "model_version": "other"}, timeout=30)
    assert answer.status_code == 409 and answer.reason == "Conflict" and "other" in answer.json()["message"]


def test_request_logs_name_the_route_not_the_item(local_server, captured):
    requests.delete(f"{local_server}/collections/photos/items/{quote(ODD_ID)}", timeout=30)
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    captured = [line for line in lines if line.get("method") == "DELETE"]
    assert captured and captured[-1]["path"] == "/collections/{name}/items/{id}" and captured[-1]["status"] == 404
    assert "été" not in json.dumps(lines) and "albums" not in json.dumps(lines)


class FailingStore(LocalStore):
    def search(self, *args, **kwargs):
        raise OSError("disk gone under s3://secret-bucket/albums/photo.jpg")


def test_a_store_fault_is_a_500_whose_traceback_is_on_the_request_line_scrubbed(monkeypatch, service, tmp_path,
                                                                              captured):
    monkeypatch.setattr(lambda_handler, "default_service", lambda: service)
    monkeypatch.setenv(stores.VECTOR_BUCKET_ENV, "vectors-1")
    monkeypatch.setattr(stores, "default_routes", lambda: CollectionRoutes(service, FailingStore(tmp_path)))
    answer = lambda_handler.handler(proxy_event("POST", "/collections/{name}/search", {"name": "photos"},
                                                {"vector": unit_rows(1)[0].tolist()}))
    assert answer["statusCode"] == 500 and "disk gone" not in answer["body"]
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert len(lines) == 1 and lines[0]["status"] == 500 and lines[0]["path"] == "/collections/{name}/search"
    assert "OSError: disk gone under s3://secret-bucket/" in lines[0]["traceback"]
    assert "albums" not in captured.getvalue() and "photo.jpg" not in captured.getvalue()


def proxy_event(method: str, resource: str, parameters: dict, body=None) -> dict:
    path = resource
    for key, value in parameters.items():
        path = path.replace("{" + key + "}", quote(value))
    return {"resource": resource, "path": path, "httpMethod": method, "pathParameters": parameters,
            "headers": {"Content-Type": "application/json"}, "requestContext": {"requestId": "r1"},
            "body": None if body is None else json.dumps(body), "isBase64Encoded": False}


@pytest.fixture
def lambda_with_local_store(monkeypatch, service, tmp_path):
    monkeypatch.setattr(lambda_handler, "default_service", lambda: service)
    monkeypatch.setenv(stores.VECTOR_BUCKET_ENV, "vectors-1")  # the search function's; the store is swapped below
    monkeypatch.setattr(stores, "default_routes", lambda: CollectionRoutes(service, LocalStore(tmp_path)))
    return lambda_handler.handler


def test_a_lambda_without_a_vector_bucket_answers_not_deployed_and_opens_no_store(monkeypatch, service):
    monkeypatch.setattr(lambda_handler, "default_service", lambda: service)
    monkeypatch.delenv(stores.VECTOR_BUCKET_ENV, raising=False)
    monkeypatch.setattr(stores, "default_routes", lambda: pytest.fail("the image function opened a store"))
    answer = lambda_handler.handler(proxy_event("POST", "/collections/{name}/search", {"name": "photos"},
                                                {"vector": unit_rows(1)[0].tolist()}))
    assert answer["statusCode"] == 404
    assert json.loads(answer["body"]) == {"message": stores.NOT_DEPLOYED}


def test_lambda_serves_the_collection_routes_like_the_local_server(lambda_with_local_store, service):
    handler = lambda_with_local_store
    vector = unit_rows(1)[0].tolist()
    added = handler(proxy_event("POST", "/collections/{name}/items", {"name": "photos"},
                                {"items": [{"id": ODD_ID, "vector": vector}]}))
    assert added["statusCode"] == 200 and json.loads(added["body"])["added"] == 1
    assert "DELETE" in added["headers"]["Access-Control-Allow-Methods"]
    found = handler(proxy_event("POST", "/collections/{name}/search", {"name": "photos"}, {"vector": vector}))
    assert json.loads(found["body"])["matches"][0]["id"] == ODD_ID
    gone = handler(proxy_event("DELETE", "/collections/{name}/items/{id}", {"name": "photos", "id": ODD_ID}))
    assert json.loads(gone["body"]) == {"deleted": ODD_ID}
    info = handler(proxy_event("GET", "/collections/{name}", {"name": "photos"}))
    assert json.loads(info["body"]) == {"name": "photos", "count": 0, "model_version": service.model_version}
    bad = handler(proxy_event("GET", "/collections/{name}", {"name": "No_Such"}))
    assert bad["statusCode"] == 400


def test_lambda_still_answers_the_image_similarity_route(lambda_with_local_store, cat_jpeg):
    from helpers import b64

    event = {"resource": "/image-similarity", "path": "/image-similarity", "httpMethod": "POST",
             "body": json.dumps({"img": b64(cat_jpeg)}), "isBase64Encoded": False}
    assert len(json.loads(lambda_with_local_store(event)["body"])["result"]) == 512


def test_the_store_is_s3_vectors_when_a_vector_bucket_is_configured_else_local(tmp_path, monkeypatch):
    local = stores.store_from_env({"IMAGE_SIMILARITY_DATA_DIR": str(tmp_path)})
    assert isinstance(local, LocalStore) and local.folder == tmp_path
    made = []

    class FakeS3VectorsStore:
        def __init__(self, bucket_name, client=None):
            made.append(bucket_name)

    import sys
    import types

    module = types.ModuleType("image_similarity.search.s3vectors_store")
    module.S3VectorsStore = FakeS3VectorsStore
    monkeypatch.setitem(sys.modules, "image_similarity.search.s3vectors_store", module)
    assert isinstance(stores.store_from_env({"IMAGE_SEARCH_VECTOR_BUCKET": "vectors-1"}), FakeS3VectorsStore)
    assert made == ["vectors-1"]
