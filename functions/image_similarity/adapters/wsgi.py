"""A WSGI application over the service, shared by the local server and the SageMaker server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.util import application_uri

from image_similarity.adapters.explorer_page import Explorer, Page
from image_similarity.core.request_log import log_request, request_id
from image_similarity.core.service import ImageSimilarityService, Response
from image_similarity.core.settings import MAX_BODY_BYTES
from image_similarity.search.api import CollectionRoutes, match

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
EXPLORER_ROOT = "/api-explorer"
REASONS = {200: "OK", 308: "Permanent Redirect", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large", 422: "Unprocessable Entity",
           500: "Internal Server Error"}


class ServiceApp:
    """`POST <predict_path>` runs the API; `GET /ping` answers 200 (the service is built before serving);
    with an `explorer`, `GET /api-explorer/` serves the API Explorer; with `collections` (a factory, called on the
    first such request), the routes under /collections/ serve the search API."""

    def __init__(self, service: ImageSimilarityService, predict_path: str, explorer: Explorer | None = None,
                 collections: Callable[[], CollectionRoutes] | None = None):
        self.service = service
        self.predict_path = predict_path
        self.explorer = explorer
        self.collections = collections

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if self.explorer and method in ("GET", "HEAD") and (path + "/").startswith(EXPLORER_ROOT + "/"):
            page = self.explorer.get(path.removeprefix(EXPLORER_ROOT), application_uri(environ).rstrip("/"))
            return self._send_page(page, start_response)
        if path == "/ping" and method in ("GET", "HEAD"):
            response = Response(200, {"status": "ok", "model_version": self.service.model_version})
        elif path == self.predict_path:
            response = self._predict(environ) if method == "POST" else _error(405, f"use POST on {path}")
        elif self.collections is not None and (route := match(path)) is not None:
            response = self._timed(environ, route.template, lambda body: self.collections().handle(
                method, path.encode("latin-1").decode("utf-8", "replace"), body))  # WSGI paths arrive as latin-1
        else:
            response = _error(404, f"no such path {path}; POST JSON to {self.predict_path}")
        return self._send(response, start_response)

    def _predict(self, environ: dict[str, Any]) -> Response:
        return self._timed(environ, environ.get("PATH_INFO", ""), self.service.handle)

    def _timed(self, environ: dict[str, Any], logged_path: str, answer: Callable[[bytes], Response]) -> Response:
        """Read the body within the limit, answer, log one line (`logged_path`: never an item id)."""
        start = time.perf_counter()
        response = self._answer(environ, answer)
        log_request(response, request_id=request_id(environ.get("HTTP_X_REQUEST_ID")),
                    method=environ.get("REQUEST_METHOD", ""), path=logged_path,
                    duration_ms=(time.perf_counter() - start) * 1000)
        return response

    def _answer(self, environ: dict[str, Any], answer: Callable[[bytes], Response]) -> Response:
        length = environ.get("CONTENT_LENGTH") or "0"
        if not length.isdigit():
            return _error(400, "invalid Content-Length header")
        if int(length) > MAX_BODY_BYTES:
            return _error(413, f"the request body is larger than {MAX_BODY_BYTES} bytes; send a URL instead")
        return answer(environ["wsgi.input"].read(int(length)))

    def _send(self, response: Response, start_response: StartResponse) -> list[bytes]:
        payload = json.dumps(response.body).encode()
        status = f"{response.status} {REASONS.get(response.status, 'Error')}"
        start_response(status, [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            ("X-Model-Version", self.service.model_version),
        ])
        return [payload]

    def _send_page(self, page: Page, start_response: StartResponse) -> list[bytes]:
        status = f"{page.status} {REASONS.get(page.status, 'Error')}"
        start_response(status, [("Content-Type", page.content_type), ("Content-Length", str(len(page.body))),
                                *page.headers.items()])
        return [page.body]


def _error(status: int, message: str) -> Response:
    return Response(status, {"message": message})
