"""The API Explorer in a real headless Chromium (Debian's `chromium`, driven by Playwright; `make test` installs it):
read the operation, run "Try it out" with the document's examples, and see no "Try it out" under AWS_IAM."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import waitress.server
from helpers import free_port, wait_for_ping
from image_similarity.adapters.explorer_page import ExplorerConfig
from image_similarity.adapters.local_server import local_app
from playwright.sync_api import Page, expect

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
OPERATION = "#operations-Image_Similarity-imageSimilarity"
TIMEOUT_MS = 30_000


@pytest.fixture
def page(browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith("http://127.0.0.1:") else outside.append(r.url))
    yield page
    context.close()
    assert not outside, f"the page asked for something off this machine: {outside}"


@pytest.fixture(scope="module")
def explorer_url(service) -> Iterator[str]:
    """The local server's app (API + explorer) with Try-it-out on, as `image-similarity serve` runs it."""
    server = waitress.server.create_server(local_app(service, ExplorerConfig()), host="127.0.0.1", port=0)
    threading.Thread(target=server.run, daemon=True).start()
    yield f"http://127.0.0.1:{server.effective_port}/api-explorer/"
    server.close()


@pytest.fixture(scope="module")
def iam_explorer_url() -> Iterator[str]:
    """`image-similarity serve --explorer-authorization AWS_IAM`, started the way a user starts it."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "image-similarity"), "serve", "--port", str(port),
               "--explorer-authorization", "AWS_IAM"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    wait_for_ping(base, proc)
    yield f"{base}/api-explorer/"
    proc.terminate()
    proc.wait(timeout=10)


def execute_example(page: Page, summary: str) -> dict:
    """Pick a request example, press Execute, and read the response panel's status and JSON body."""
    page.locator(f"{OPERATION} .opblock-section-request-body select.examples-select-element").select_option(
        label=summary)
    page.locator(f"{OPERATION} button.execute").click()
    live = page.locator(f"{OPERATION} .live-responses-table")
    status = live.locator("tbody td.response-col_status").first
    expect(status).to_have_text("200", timeout=TIMEOUT_MS)
    body = live.locator("tbody .response-col_description pre").first.inner_text()
    return json.loads(body)


def test_try_it_out_runs_both_modes_from_the_document_examples(page, explorer_url):
    page.goto(explorer_url)
    operation = page.locator(OPERATION)
    expect(operation.locator(".opblock-summary-path")).to_have_text("/image-similarity")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()

    embedding = execute_example(page, "One image, base64: its embedding")
    # Swagger UI re-prints the JSON, so an exact 0.0 (a feature the int8 model switched off) shows as 0.
    vector = embedding["result"]
    assert len(vector) == 512 and all(type(x) in (int, float) for x in vector)
    assert abs(sum(x * x for x in vector) - 1.0) < 1e-4

    page.locator(f"{OPERATION} button.btn-clear").click()  # clear the first answer so the next one is fresh
    pair = execute_example(page, "Two images, base64: their similarity")
    assert 0.9 < pair["similarity"] <= 1.0, "the cat and its mirror image are near-duplicates"

    ARTIFACTS.mkdir(exist_ok=True)
    operation.locator(".live-responses-table").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "api-explorer-try-it-out.png"), full_page=False)


def test_reference_only_under_aws_iam(page, iam_explorer_url):
    page.goto(iam_explorer_url)
    operation = page.locator(OPERATION)
    operation.locator(".opblock-summary").click()
    expect(operation.locator(".opblock-section-request-body")).to_be_visible()
    expect(page.get_by_text("reference only")).to_be_visible()
    assert page.locator("button.try-out__btn").count() == 0
    assert page.get_by_role("button", name="Try it out").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "api-explorer-aws-iam.png"), full_page=False)
