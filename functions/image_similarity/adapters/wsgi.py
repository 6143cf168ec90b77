"""A WSGI application over the service, shared by the local server and the SageMaker server."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.util import application_uri

from image_similarity.adapters.explorer_page import Explorer, Page
from image_similarity.core.errors import body_too_large
from image_similarity.core.request_log import log_request, request_id
from image_similarity.core.service import ImageSimilarityService, Response, error_response
from image_similarity.core.settings import MAX_BODY_BYTES
from image_similarity.search.api import CollectionRoutes, match

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
EXPLORER_ROOT = "/api-explorer"
# A Host header is a name or an address and a port: the explorer writes it into the OpenAPI document it serves.
HOST_HEADER = re.compile(r"^(?:(?P<name>[A-Za-z0-9._-]{1,253})|\[(?P<v6>[0-9A-Fa-f:.]{2,45})\])(?::[0-9]{1,5})?$")
REASONS = {200: "OK", 308: "Permanent Redirect", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large", 422: "Unprocessable Entity",
           429: "Too Many Requests", 500: "Internal Server Error"}


class ServiceApp:
    """`POST <predict_path>` runs the API; `GET /ping` answers 200 (the service is built before serving);
    with an `explorer`, `GET /api-explorer/` serves the API Explorer; with `collections` (a factory, called on the
    first such request), the routes under /collections/ serve the search API. With `hosts`, requests naming another
    Host are refused."""

    def __init__(self, service: ImageSimilarityService, predict_path: str, explorer: Explorer | None = None,
                 hosts: frozenset[str] | None = None, collections: Callable[[], CollectionRoutes] | None = None):
        self.service = service
        self.predict_path = predict_path
        self.explorer = explorer
        self.hosts = hosts
        self.collections = collections

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if refusal := self._check_host(environ.get("HTTP_HOST")):
            return self._send(refusal, start_response)
        if self.explorer and method in ("GET", "HEAD") and (path + "/").startswith(EXPLORER_ROOT + "/"):
            page = self.explorer.get(path.removeprefix(EXPLORER_ROOT), application_uri(environ).rstrip("/"))
            return self._send_page(page, start_response)
        if path == "/ping" and method in ("GET", "HEAD"):
            response = Response(200, {"status": "ok", "model_version": self.service.model_version,
                                      "thresholds": self.service.embedder.info.thresholds})
        elif path == self.predict_path:
            response = self._predict(environ) if method == "POST" else _error(405, f"use POST on {path}")
        elif self.collections is not None and (route := match(path)) is not None:
            response = self._timed(environ, route.template, lambda body: self.collections().handle(
                method, path.encode("latin-1").decode("utf-8", "replace"), body))  # WSGI paths arrive as latin-1
        else:
            response = _error(404, f"no such path {path}; POST JSON to {self.predict_path}")
        return self._send(response, start_response)

    def _check_host(self, header: str | None) -> Response | None:
        if header is None:  # HTTP/1.0 without Host: the server's own name is used
            return None
        form = HOST_HEADER.match(header)
        if form is None:
            return _error(400, "the Host header is not a host name or address with an optional port")
        name = (form["name"] or form["v6"]).lower().rstrip(".")
        if self.hosts is not None and name not in self.hosts:
            return _error(403, "this server does not answer to that Host name; see IMAGE_SIMILARITY_ALLOWED_HOSTS")
        return None

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
        if not (length.isascii() and length.isdigit()):  # "²" is a digit to str.isdigit() and not to int()
            return _error(400, "invalid Content-Length header")
        if int(length) > MAX_BODY_BYTES:
            return error_response(body_too_large())
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
