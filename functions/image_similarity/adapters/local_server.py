"""`image-similarity serve` and the SageMaker container's server: the API on `POST /image-similarity` (or SageMaker's
`/invocations`), `/ping`, and the API Explorer on `/api-explorer/`. The pieces: the HTTP front (`http_server`), the
worker processes (`supervisor`) and graceful shutdown (`shutdown`)."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import replace

from image_similarity.adapters.explorer_page import Explorer, ExplorerConfig
from image_similarity.adapters.http_server import create_server
from image_similarity.adapters.malloc_policy import return_freed_memory
from image_similarity.adapters.shutdown import run_until_terminated
from image_similarity.adapters.supervisor import bind, run_workers
from image_similarity.adapters.wsgi import ServiceApp
from image_similarity.core.service import ImageSimilarityService, build_service
from image_similarity.core.settings import Settings, cpu_count, server_fetch_limits
from image_similarity.search.stores import routes_factory

API_PATH = "/image-similarity"
# Host names a loopback server answers to: a web page that makes a browser post to it under its own name (DNS
# rebinding) is refused. `IMAGE_SIMILARITY_ALLOWED_HOSTS` (comma-separated) adds names.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
log = logging.getLogger(__name__)


def allowed_hosts(host: str, env: dict[str, str] | None = None) -> frozenset[str] | None:
    """The Host names to accept when serving on `host`: None (any) beyond loopback unless some are listed."""
    env = os.environ if env is None else env
    listed = frozenset(h.strip().lower() for h in env.get("IMAGE_SIMILARITY_ALLOWED_HOSTS", "").split(",") if h.strip())
    if host in LOOPBACK_HOSTS or host.startswith("127."):
        return LOOPBACK_HOSTS | listed
    return listed or None


def no_metadata_probe(env: dict[str, str] | os._Environ) -> None:
    """Off AWS, boto3 looking for credentials would call the instance metadata address (169.254.169.254) on the first
    s3:// request; the local server disables that unless told otherwise (AWS_EC2_METADATA_DISABLED=false)."""
    env.setdefault("AWS_EC2_METADATA_DISABLED", "true")


def local_app(service: ImageSimilarityService, explorer: ExplorerConfig, hosts: frozenset[str] | None = None
              ) -> ServiceApp:
    """The API, the collection routes (the local store) and the API Explorer. `EXPLORER_AUTHORIZATION=AWS_IAM` shows
    the explorer as an IAM-protected deployment does (reference only, no "Try it out")."""
    return ServiceApp(service, API_PATH, Explorer(replace(explorer, image_search=True)), hosts,
                      routes_factory(service))


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    threads: int = 4,
    predict_path: str = API_PATH,
    explorer: ExplorerConfig | None = None,
    workers: int | None = None,
) -> int:
    """`explorer` defaults to the environment's (EXPLORER_AUTHORIZATION). On `predict_path` other than the API's (the
    SageMaker server's /invocations), no explorer is served. With `workers` > 1, that many processes, each with its
    own model session and `threads` threads, answer on one listening socket. Returns the exit status.

    By default one worker per CPU, each running the model on one thread: the GIL-bound parts of a request (JSON,
    base64, HTTP) then run in parallel too. On 2 CPUs, 16 clients got 1.92-1.96 times the throughput of 1 client
    this way, 1.69-1.71 times with one process of 4 threads (bench-perf, 1920 px JPEG)."""
    workers = workers or cpu_count()
    if workers <= 1:
        serve_one(host, port, threads, predict_path, explorer)
        return 0
    sock = bind(host, port)
    log.info("%d workers on http://%s:%d", workers, host, sock.getsockname()[1])
    return run_workers(lambda: serve_one(host, port, threads, predict_path, explorer, sock, workers), workers, sock)


def serve_one(
    host: str, port: int, threads: int, predict_path: str, explorer: ExplorerConfig | None,
    sock: socket.socket | None = None, workers: int = 1,
) -> None:
    return_freed_memory()  # before the model and the server start their threads
    # The model is loaded before listening, so /ping is only up once it can answer.
    settings = Settings.from_env(processes=workers)
    fetch = server_fetch_limits(settings.fetch, threads)
    service = build_service(replace(settings, fetch=fetch))
    if predict_path == API_PATH:
        no_metadata_probe(os.environ)
        app = local_app(service, explorer or ExplorerConfig.from_env(), allowed_hosts(host))
        log.info("API Explorer on http://%s:%d/api-explorer/ (%s)", host, port, app.explorer.config.authorization)
    else:
        app = ServiceApp(service, predict_path)
    server = create_server(app, host, port, threads + fetch.concurrent_fetches, sock)
    log.info("serving %s on http://%s:%s (model %s)", predict_path, host, server.effective_port, service.model_version)
    run_until_terminated(server)
