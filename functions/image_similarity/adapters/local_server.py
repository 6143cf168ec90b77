"""The local HTTP server: the API on `POST /image-similarity` and the API Explorer on `/api-explorer/`, under
waitress, a production WSGI server."""

from __future__ import annotations

import logging

import waitress

from ..explorer import Explorer, ExplorerConfig
from ..service import ImageSimilarityService, default_service
from ..settings import MAX_BODY_BYTES
from .wsgi import ServiceApp

API_PATH = "/image-similarity"
log = logging.getLogger(__name__)


def local_app(service: ImageSimilarityService, explorer: ExplorerConfig) -> ServiceApp:
    """The API and the API Explorer. `EXPLORER_AUTHORIZATION=AWS_IAM` shows the explorer as an IAM-protected
    deployment does (reference only, no "Try it out")."""
    return ServiceApp(service, API_PATH, Explorer(explorer))


def serve(host: str = "127.0.0.1", port: int = 8080, threads: int = 4, predict_path: str = API_PATH) -> None:
    """On `predict_path` other than the API's (the SageMaker server's /invocations), no explorer is served."""
    service = default_service()  # load the model before listening, so /ping is only up once it can answer
    if predict_path == API_PATH:
        app = local_app(service, ExplorerConfig.from_env())
        log.info("API Explorer on http://%s:%d/api-explorer/ (%s)", host, port, app.explorer.config.authorization)
    else:
        app = ServiceApp(service, predict_path)
    log.info("serving %s on http://%s:%d (model %s)", predict_path, host, port, service.model_version)
    waitress.serve(
        app,
        host=host,
        port=port,
        threads=threads,
        max_request_body_size=MAX_BODY_BYTES + 1,
        ident="image-similarity",
    )
