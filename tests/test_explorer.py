"""The API Explorer: its Lambda handler with API Gateway proxy events, and the local server's /api-explorer/."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import requests
import waitress.server
from image_similarity.adapters import explorer_lambda
from image_similarity.adapters.explorer_page import ASSETS_DIR, Explorer, ExplorerConfig
from image_similarity.adapters.local_server import local_app

HOST = "abc123.execute-api.eu-west-1.amazonaws.com"


def proxy_event(path: str, stage: str = "prod", proxy: str | None = None) -> dict:
    """A REST API proxy event as API Gateway sends it for `GET <path>` on the execute-api host."""
    return {
        "resource": "/api-explorer/{proxy+}" if proxy is not None else "/api-explorer",
        "path": path,
        "httpMethod": "GET",
        "headers": {"Host": HOST, "Accept": "*/*"},
        "pathParameters": {"proxy": proxy} if proxy is not None else None,
        "requestContext": {"stage": stage, "domainName": HOST, "path": f"/{stage}{path}", "httpMethod": "GET"},
        "body": None,
        "isBase64Encoded": False,
    }


@pytest.fixture
def lambda_handler(monkeypatch):
    """The handler as deployed, configured by the stack's environment variables."""

    def configure(**env: str):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        explorer_lambda.default_explorer.cache_clear()
        return explorer_lambda.handler

    yield configure
    explorer_lambda.default_explorer.cache_clear()


def get(handler, path: str, **kwargs) -> dict:
    proxy = path.removeprefix("/api-explorer/") if path.startswith("/api-explorer/") else None
    response = handler(proxy_event(path, proxy=proxy, **kwargs), None)
    assert response["isBase64Encoded"] is False
    return response


def test_lambda_serves_the_page_with_its_own_assets_and_no_third_party_urls(lambda_handler):
    handler = lambda_handler(EXPLORER_AUTHORIZATION="NONE", EXPLORER_IMAGE_SIMILARITY="yes")
    page = get(handler, "/api-explorer/")
    assert page["statusCode"] == 200
    assert page["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page["headers"]["Content-Security-Policy"]
    for src in ('href="swagger-ui.css"', 'src="swagger-ui-bundle.js"', 'src="explorer.js"'):
        assert src in page["body"]
    assert "http" not in page["body"].replace("http-equiv", ""), "no absolute URL: nothing from a CDN"


@pytest.mark.parametrize(("asset", "content_type"), [
    ("swagger-ui-bundle.js", "application/javascript; charset=utf-8"),
    ("swagger-ui.css", "text/css; charset=utf-8"),
    ("explorer.js", "application/javascript; charset=utf-8"),
])
def test_lambda_serves_assets_with_their_content_types(lambda_handler, asset, content_type):
    response = get(lambda_handler(), f"/api-explorer/{asset}")
    assert (response["statusCode"], response["headers"]["Content-Type"]) == (200, content_type)
    if (ASSETS_DIR / asset).exists():
        assert response["body"].encode() == (ASSETS_DIR / asset).read_bytes()


def test_lambda_spec_names_the_live_base_url_and_the_operation(lambda_handler):
    response = get(lambda_handler(EXPLORER_IMAGE_SIMILARITY="yes"), "/api-explorer/openapi.json", stage="beta")
    assert response["headers"]["Content-Type"] == "application/json"
    doc = json.loads(response["body"])
    assert doc["servers"][0]["url"] == f"https://{HOST}/beta"
    assert list(doc["paths"]) == ["/image-similarity"]


def test_lambda_spec_on_a_custom_domain_keeps_its_base_path(lambda_handler):
    event = proxy_event("/api-explorer/openapi.json", proxy="openapi.json")
    event["requestContext"].update(domainName="api.example.com", path="/images/api-explorer/openapi.json")
    doc = json.loads(lambda_handler()(event, None)["body"])
    assert doc["servers"][0]["url"] == "https://api.example.com/images"


def test_lambda_spec_without_image_similarity_lists_no_operation_and_says_so(lambda_handler):
    doc = json.loads(get(lambda_handler(EXPLORER_IMAGE_SIMILARITY="no"), "/api-explorer/openapi.json")["body"])
    assert doc["paths"] == {}
    assert "Image Similarity is not deployed" in doc["info"]["description"]


@pytest.mark.parametrize(("authorization", "methods"), [("NONE", ["post"]), ("AWS_IAM", [])])
def test_try_it_out_only_without_iam(lambda_handler, authorization, methods):
    handler = lambda_handler(EXPLORER_AUTHORIZATION=authorization)
    script = get(handler, "/api-explorer/explorer.js")["body"]
    settings = json.loads(script.removeprefix("window.ui = SwaggerUIBundle(").removesuffix(");\n"))
    assert settings["supportedSubmitMethods"] == methods
    assert settings["validatorUrl"] is None
    description = json.loads(get(handler, "/api-explorer/openapi.json")["body"])["info"]["description"]
    assert ("reference only" in description) == (authorization == "AWS_IAM")


def test_lambda_redirects_the_bare_root_to_the_page_keeping_the_stage(lambda_handler):
    response = get(lambda_handler(), "/api-explorer")
    assert response["statusCode"] == 308
    # Relative to /prod/api-explorer, this is /prod/api-explorer/.
    assert response["headers"]["Location"] == "api-explorer/"


@pytest.mark.parametrize("path", ["/api-explorer/nope.js", "/api-explorer/../openapi.json",
                                  "/api-explorer/swagger_ui/LICENSE", "/api-explorer/index.css"])
def test_lambda_answers_404_for_unknown_paths(lambda_handler, path):
    response = get(lambda_handler(), path)
    assert response["statusCode"] == 404
    assert "message" in json.loads(response["body"])


def test_unknown_authorization_is_refused_at_start():
    with pytest.raises(ValueError, match="NONE, AWS_IAM"):
        ExplorerConfig(authorization="COGNITO")


@pytest.fixture(scope="module")
def local_explorer(service) -> Iterator[str]:
    server = waitress.server.create_server(local_app(service, ExplorerConfig()), host="127.0.0.1", port=0)
    threading.Thread(target=server.run, daemon=True).start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()


def test_local_server_serves_the_explorer_with_its_own_address_as_server(local_explorer):
    page = requests.get(f"{local_explorer}/api-explorer", timeout=10)  # follows the redirect
    assert page.url == f"{local_explorer}/api-explorer/" and page.status_code == 200
    assert "swagger-ui-bundle.js" in page.text
    doc = requests.get(f"{local_explorer}/api-explorer/openapi.json", timeout=10).json()
    assert doc["servers"][0]["url"] == local_explorer
    css = requests.get(f"{local_explorer}/api-explorer/swagger-ui.css", timeout=10)
    assert css.headers["Content-Type"] == "text/css; charset=utf-8" and css.content.startswith(b".swagger-ui")


def test_local_server_keeps_the_api_beside_the_explorer(local_explorer):
    assert requests.get(f"{local_explorer}/ping", timeout=10).status_code == 200
    assert requests.get(f"{local_explorer}/api-explorer/missing", timeout=10).status_code == 404
    assert requests.post(f"{local_explorer}/api-explorer/", timeout=10).status_code == 404


def test_explorer_document_is_the_contract_plus_the_deployment_facts():
    doc = Explorer(ExplorerConfig()).document("https://x.example/prod")
    with open(ASSETS_DIR.parent / "openapi.json") as f:
        source = json.load(f)
    assert doc["paths"] == source["paths"] and doc["components"] == source["components"]


def test_serve_takes_the_explorer_authorization_from_the_flag_or_the_environment(monkeypatch):
    from image_similarity.adapters.cli import build_parser

    monkeypatch.setenv("EXPLORER_AUTHORIZATION", "AWS_IAM")
    assert build_parser().parse_args(["serve"]).explorer_authorization == "AWS_IAM"
    flag = ["serve", "--explorer-authorization", "NONE"]
    assert build_parser().parse_args(flag).explorer_authorization == "NONE"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--explorer-authorization", "COGNITO"])
