"""The local HTTP server: the API on `POST /image-similarity` under waitress, a production WSGI server."""

from __future__ import annotations

import logging

import waitress

from ..service import default_service
from ..settings import MAX_BODY_BYTES
from .wsgi import ServiceApp

API_PATH = "/image-similarity"
log = logging.getLogger(__name__)


def serve(host: str = "127.0.0.1", port: int = 8080, threads: int = 4, predict_path: str = API_PATH) -> None:
    service = default_service()  # load the model before listening, so /ping is only up once it can answer
    log.info("serving %s on http://%s:%d (model %s)", predict_path, host, port, service.model_version)
    waitress.serve(
        ServiceApp(service, predict_path),
        host=host,
        port=port,
        threads=threads,
        max_request_body_size=MAX_BODY_BYTES + 1,
        ident="image-similarity",
    )
