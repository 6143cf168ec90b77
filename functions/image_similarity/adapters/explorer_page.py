"""The API Explorer: Swagger UI over `openapi.json`, from the package's own copy of Swagger UI (no CDN).

Standard library only, so the explorer Lambda ships this module, the document and the assets, and nothing else.
Paths are relative to the explorer's root (`/api-explorer`); the caller says what the API's public base URL is.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parents[1]
OPENAPI_PATH = PACKAGE_DIR / "openapi.json"
ASSETS_DIR = PACKAGE_DIR / "swagger_ui"  # vendored by scripts/vendor_swagger_ui.sh
ASSETS = {
    "/swagger-ui-bundle.js": "application/javascript; charset=utf-8",
    "/swagger-ui.css": "text/css; charset=utf-8",
    "/LICENSE": "text/plain; charset=utf-8",
}
AUTHORIZATIONS = ("NONE", "AWS_IAM")
# Same-origin only: the page, its assets, the document and "Try it out" calls all come from the API's own host.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'")
HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Image Similarity API Explorer</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="swagger-ui-bundle.js"></script>
<script src="explorer.js"></script>
</body>
</html>
"""
IAM_NOTE = ("**This deployment requires AWS IAM authorization (Signature Version 4) on API calls, so this page shows "
            "the reference only.** Call the API with a SigV4-signing client, for example Python `requests` with "
            "`botocore`'s `SigV4Auth`, or Postman's AWS Signature authorization.\n\n")
NOT_DEPLOYED_NOTE = ("**Image Similarity is not deployed on this stack** (its `ImageSimilarity` parameter is `no`), so "
                     "there is no operation to show. Update the stack with `ImageSimilarity` = `yes` to deploy it.\n\n")


@dataclass(frozen=True)
class Page:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExplorerConfig:
    """`authorization` is the API's (NONE: "Try it out" on; AWS_IAM: reference only); `image_similarity` says
    whether the operation is deployed, `image_search` whether the collection routes are."""

    authorization: str = "NONE"
    image_similarity: bool = True
    image_search: bool = True

    def __post_init__(self) -> None:
        if self.authorization not in AUTHORIZATIONS:
            raise ValueError(f"authorization must be one of {', '.join(AUTHORIZATIONS)}, not {self.authorization!r}")

    @property
    def try_it_out(self) -> bool:
        return self.authorization == "NONE"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ExplorerConfig:
        env = dict(os.environ if env is None else env)
        return cls(authorization=env.get("EXPLORER_AUTHORIZATION", "NONE").upper(),
                   image_similarity=env.get("EXPLORER_IMAGE_SIMILARITY", "yes").lower() == "yes",
                   image_search=env.get("EXPLORER_IMAGE_SEARCH", "no").lower() == "yes")


class Explorer:
    """Answers GET requests under the explorer's root: the page, its script, the document, Swagger UI's assets."""

    def __init__(self, config: ExplorerConfig):
        self.config = config

    def get(self, path: str, base_url: str) -> Page:
        """`path` relative to the explorer's root ("" for the root itself); `base_url` is the API's public base."""
        if path == "":  # relative asset URLs need the trailing slash; a relative Location keeps any stage prefix
            return Page(308, "text/plain; charset=utf-8", b"", {"Location": "api-explorer/"})
        if path in ("/", "/index.html"):
            return self._page("text/html; charset=utf-8", HTML.encode())
        if path == "/explorer.js":
            return self._page("application/javascript; charset=utf-8", self._script)
        if path == "/openapi.json":
            return self._page("application/json", json.dumps(self.document(base_url)).encode())
        if path in ASSETS:
            # The assets change only with the pinned Swagger UI version, so browsers may keep them a day.
            return Page(200, ASSETS[path], self._asset(path), {"Cache-Control": "public, max-age=86400"})
        return Page(404, "application/json", json.dumps({"message": f"no such explorer file: {path}"}).encode())

    def document(self, base_url: str) -> dict[str, Any]:
        """The OpenAPI document as this deployment serves it: its base URL, and only the deployed operations."""
        doc = copy.deepcopy(self._source_document)
        doc["servers"] = [{"url": base_url, "description": "This deployment"}]
        notes = ""
        if not self.config.try_it_out:
            notes += IAM_NOTE
        if not self.config.image_similarity:
            notes += NOT_DEPLOYED_NOTE
            doc["paths"] = {}
            doc.pop("components", None)  # schemas of an operation that is not there would only mislead
        elif not self.config.image_search:
            doc["paths"] = {path: item for path, item in doc["paths"].items() if not path.startswith("/collections/")}
        doc["info"]["description"] = notes + doc["info"]["description"]
        return doc

    def _page(self, content_type: str, body: bytes) -> Page:
        return Page(200, content_type, body, {"Cache-Control": "no-cache", "Content-Security-Policy": CSP})

    @cached_property
    def _source_document(self) -> dict[str, Any]:
        return json.loads(OPENAPI_PATH.read_text())

    @cached_property
    def _script(self) -> bytes:
        """Swagger UI's settings. `supportedSubmitMethods: []` removes "Try it out" for a reference-only page."""
        settings = {
            "url": "openapi.json",
            "dom_id": "#swagger-ui",
            "deepLinking": True,
            "displayRequestDuration": True,
            "validatorUrl": None,  # the default asks validator.swagger.io about the document: no third parties
            "supportedSubmitMethods": (["post", "get", "delete"] if self.config.image_search else ["post"])
            if self.config.try_it_out else [],
            "defaultModelsExpandDepth": 0,
        }
        return f"window.ui = SwaggerUIBundle({json.dumps(settings)});\n".encode()

    def _asset(self, path: str) -> bytes:
        return (ASSETS_DIR / path.lstrip("/")).read_bytes()
