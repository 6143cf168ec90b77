"""AWS Lambda handler for the API Explorer behind API Gateway (`GET /api-explorer`, `GET /api-explorer/{proxy+}`).

It imports nothing outside the standard library and `image_similarity.adapters.explorer_page`, so its zip holds a few
files.
The deployment tells it what it serves through `EXPLORER_AUTHORIZATION` and `EXPLORER_IMAGE_SIMILARITY`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from image_similarity.adapters.explorer_page import Explorer, ExplorerConfig, Page

ROOT = "/api-explorer"


@lru_cache(maxsize=1)
def default_explorer() -> Explorer:
    return Explorer(ExplorerConfig.from_env())


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    page = default_explorer().get(event.get("path", ROOT).partition(ROOT)[2], base_url(event))
    return _proxy(page)


def base_url(event: dict[str, Any]) -> str:
    """The API's public base URL: the request's host and whatever precedes the explorer in the path the client
    sent (`/prod` on the execute-api host, a base path or nothing on a custom domain)."""
    context = event.get("requestContext", {})
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    host = context.get("domainName") or headers.get("host", "")
    client_path = context.get("path") or f"/{context.get('stage', '')}{event.get('path', '')}"
    return f"https://{host}{client_path.partition(ROOT)[0]}"


def _proxy(page: Page) -> dict[str, Any]:
    # Every explorer file is UTF-8 text, so no binary media types are needed on the REST API.
    return {
        "statusCode": page.status,
        "headers": {"Content-Type": page.content_type, **page.headers},
        "body": page.body.decode(),
        "isBase64Encoded": False,
    }
