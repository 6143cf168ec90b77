"""The client's collection methods against the local server (a real store in a temporary folder), its batching, and
SigV4 signatures on GET and DELETE as well as POST."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import waitress.server
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from image_similarity.adapters.local_server import API_PATH
from image_similarity.adapters.wsgi import ServiceApp
from image_similarity.client import ImageSimilarityClient, ImageSimilarityError
from image_similarity.search.api import CollectionRoutes
from image_similarity.search.local_store import LocalStore
from search_helpers import unit_rows


@pytest.fixture
def client(service, tmp_path) -> Iterator[ImageSimilarityClient]:
    routes = CollectionRoutes(service, LocalStore(tmp_path))
    server = waitress.server.create_server(ServiceApp(service, API_PATH, collections=lambda: routes),
                                           host="127.0.0.1", port=0)
    threading.Thread(target=server.run, daemon=True).start()
    yield ImageSimilarityClient(f"http://127.0.0.1:{server.effective_port}{API_PATH}", retries=0)
    server.close()


def test_add_search_describe_and_delete(client, tmp_path, cat_jpeg, coffee_png, service):
    cat = tmp_path / "cat.jpg"
    cat.write_bytes(cat_jpeg)
    vector = unit_rows(1)[0]
    added = client.add("photos", [{"id": "cat", "image": cat, "metadata": {"kind": "cat"}},
                                  {"id": "coffee", "image": coffee_png}, {"id": "v", "vector": vector}])
    assert added == 3
    matches = client.search("photos", str(cat), k=2)
    assert matches[0] == {"id": "cat", "similarity": pytest.approx(1.0, abs=1e-5), "metadata": {"kind": "cat"}}
    assert client.search("photos", vector, k=1)[0]["id"] == "v"
    assert client.search("photos", vector, min_similarity=0.99) == [client.search("photos", vector, k=1)[0]]
    assert client.collection("photos") == {"name": "photos", "count": 3, "model_version": service.model_version}
    assert client.delete("photos", "coffee") == {"deleted": "coffee"}
    assert client.collection("photos")["count"] == 2
    assert client.delete("photos") == {"deleted": "photos"}
    with pytest.raises(ImageSimilarityError) as missing:
        client.collection("photos")
    assert missing.value.status == 404 and "photos" in missing.value.message


def test_more_items_than_one_request_takes_are_sent_in_batches(client, monkeypatch):
    sent = []
    original = client.request
    monkeypatch.setattr(client, "request", lambda payload, **kw: sent.append(len(payload["items"]))
                        or original(payload, **kw))
    rows = unit_rows(1001)
    assert client.add("many", ({"id": str(i), "vector": row} for i, row in enumerate(rows))) == 1001
    assert sent == [500, 500, 1]
    monkeypatch.undo()
    assert client.collection("many")["count"] == 1001


def test_images_are_batched_under_the_body_limit(client, monkeypatch):
    sent = []
    original = client.request
    monkeypatch.setattr(client, "request", lambda payload, **kw: sent.append(len(payload["items"]))
                        or original(payload, **kw))
    big = bytes(1_500_000)  # not an image: the API refuses it, after the batching under test
    with pytest.raises(ImageSimilarityError) as refused:
        client.add("photos", [{"id": str(i), "image": big} for i in range(5)])
    assert refused.value.status == 422
    assert sent == [2]  # 2 MB of base64 each: the first request carries two of them


def test_collection_requests_are_signed_for_their_own_method_and_path():
    credentials = Credentials("AKIDEXAMPLE", "secret", "token")
    seen: list[tuple[str, str, bool]] = []

    class Handler(BaseHTTPRequestHandler):
        def handle_any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            url = f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"
            request = AWSRequest(method=self.command, url=url, data=body,
                                 headers={k: self.headers[k] for k in ("Host", "X-Amz-Date", "X-Amz-Security-Token",
                                                                       "Content-Type") if k in self.headers})
            request.context["timestamp"] = self.headers["X-Amz-Date"]
            auth = SigV4Auth(credentials.get_frozen_credentials(), "execute-api", "eu-west-1")
            expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
            seen.append((self.command, self.path, self.headers["Authorization"].endswith(expected)))
            data = json.dumps({"matches": [], "deleted": "x", "name": "x"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = handle_any

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = ImageSimilarityClient(f"http://127.0.0.1:{server.server_address[1]}/prod/image-similarity",
                                       iam=True, region="eu-west-1", credentials=credentials, retries=0)
        client.search("photos", np.ones(512))
        client.collection("photos")
        client.delete("photos", "a b/c")
    finally:
        server.shutdown()
    assert [(method, path) for method, path, _ in seen] == [
        ("POST", "/prod/collections/photos/search"), ("GET", "/prod/collections/photos"),
        ("DELETE", "/prod/collections/photos/items/a%20b%2Fc")]
    assert all(valid for _, _, valid in seen)
