"""Shared fixtures: real photos (scikit-image's bundled ones), the service, and servers on 127.0.0.1 only."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import waitress.server
from helpers import FileServer, encode
from image_similarity.core import request_log
from image_similarity.core.service import ImageSimilarityService, build_service
from image_similarity.core.settings import FetchSettings, Settings
from skimage import data


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


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.close()


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


CHROMIUM = "/usr/bin/chromium"
# Headless, and nothing that reaches past what the tests serve (no updates, sync or first-run calls).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Debian's Chromium (installed by `make test`; Playwright never downloads a browser). Playwright is imported
    here: the service's tests also run under the Lambda image's Python, with the service's packages only."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The request logger's output, redirected for one test."""
    handler = request_log.logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)
