"""Shared fixtures: real photos (scikit-image's bundled ones), the service, and servers on 127.0.0.1 only."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import waitress.server
from image_similarity.service import ImageSimilarityService, build_service
from image_similarity.settings import FetchSettings, Settings
from PIL import Image
from skimage import data


def encode(image: Image.Image | np.ndarray, fmt: str = "JPEG", **options) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Distinct real photos, RGB uint8."""
    return {
        "chelsea": data.chelsea(),
        "coffee": data.coffee(),
        "astronaut": data.astronaut(),
        "rocket": data.rocket(),
        "camera": np.stack([data.camera()] * 3, axis=-1),
    }


@pytest.fixture(scope="session")
def cat_jpeg(photos) -> bytes:
    return encode(photos["chelsea"], "JPEG", quality=92)


@pytest.fixture(scope="session")
def coffee_png(photos) -> bytes:
    return encode(photos["coffee"], "PNG")


@pytest.fixture(scope="session")
def settings() -> Settings:
    # Tests serve images on 127.0.0.1, so they need the test-only loopback switch; nothing else is reachable.
    return Settings(threads=2, fetch=FetchSettings(allow_loopback=True, total_timeout=4.0, read_timeout=2.0))


@pytest.fixture(scope="session")
def service(settings) -> ImageSimilarityService:
    return build_service(settings)


@pytest.fixture
def call(service) -> Callable[[dict], tuple[int, dict]]:
    """Run one JSON request through the core."""

    def run(payload: dict) -> tuple[int, dict]:
        response = service.handle(json.dumps(payload))
        return response.status, response.body

    return run


class FileServer:
    """A tiny HTTP server on 127.0.0.1 whose routes tests set: path -> (status, headers, body)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        routes, requests = self.routes, self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append((self.path, dict(self.headers)))
                status, headers, body = routes.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                for key, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def api_server(service) -> Iterator[str]:
    """The local API server (waitress, as `image-similarity serve` runs it) on an ephemeral loopback port."""
    from image_similarity.adapters.local_server import API_PATH
    from image_similarity.adapters.wsgi import ServiceApp

    server = waitress.server.create_server(ServiceApp(service, API_PATH), host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()
