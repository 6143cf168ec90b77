"""The API Explorer shows the collection routes where they are served: always locally, on AWS with ImageSearch=yes."""

from __future__ import annotations

import json

import pytest
from image_similarity.adapters import explorer_lambda
from image_similarity.adapters.explorer_page import Explorer, ExplorerConfig

COLLECTION_PATHS = {"/collections/{name}", "/collections/{name}/items", "/collections/{name}/search",
                    "/collections/{name}/items/{id}"}


def settings_of(explorer: Explorer) -> dict:
    return json.loads(explorer._script.decode().removeprefix("window.ui = SwaggerUIBundle(").removesuffix(");\n"))


@pytest.mark.parametrize(("env", "shown"), [({}, False), ({"EXPLORER_IMAGE_SEARCH": "no"}, False),
                                            ({"EXPLORER_IMAGE_SEARCH": "yes"}, True)])
def test_lambda_explorer_shows_the_collection_routes_only_when_search_is_deployed(monkeypatch, env, shown):
    monkeypatch.delenv("EXPLORER_IMAGE_SEARCH", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    explorer_lambda.default_explorer.cache_clear()
    try:
        explorer = explorer_lambda.default_explorer()
        paths = set(explorer.document("https://x.example/prod")["paths"])
        assert (paths >= COLLECTION_PATHS) == shown and "/image-similarity" in paths
        methods = settings_of(explorer)["supportedSubmitMethods"]
        assert methods == (["post", "get", "delete"] if shown else ["post"])
    finally:
        explorer_lambda.default_explorer.cache_clear()


def test_reference_only_explorer_tries_nothing_even_with_search():
    explorer = Explorer(ExplorerConfig(authorization="AWS_IAM", image_search=True))
    assert settings_of(explorer)["supportedSubmitMethods"] == []
    assert set(explorer.document("https://x.example/prod")["paths"]) >= COLLECTION_PATHS


def test_local_explorer_shows_the_collection_routes(service):
    from image_similarity.adapters.local_server import local_app

    app = local_app(service, ExplorerConfig(image_search=False))  # the local server always serves them
    assert set(app.explorer.document("http://127.0.0.1:8080")["paths"]) >= COLLECTION_PATHS
