"""The local HTTP server: the API on `POST /image-similarity` and the API Explorer on `/api-explorer/`, under
waitress, a production WSGI server. Errors waitress answers itself (a body over the limit, a malformed request) are
JSON like the API's, and SIGTERM lets the requests in flight finish before the process exits."""

from __future__ import annotations

import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import waitress.server
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask

from image_similarity.adapters.explorer_page import Explorer, ExplorerConfig
from image_similarity.adapters.wsgi import ServiceApp
from image_similarity.core.request_log import log_request, request_id
from image_similarity.core.service import ImageSimilarityService, Response, build_service
from image_similarity.core.settings import MAX_BODY_BYTES, Settings, _cpu_count
from image_similarity.search.stores import routes_factory

API_PATH = "/image-similarity"
# How long SIGTERM waits for requests in flight; SageMaker and ECS allow 30 s before SIGKILL.
SHUTDOWN_GRACE_SECONDS = 25.0
log = logging.getLogger(__name__)


class JsonErrorTask(ErrorTask):
    """Waitress's own error answers (413 for a body over the limit, 400 for a malformed request) as API JSON."""

    def execute(self) -> None:
        error = self.request.error
        # Waitress answers an unknown Transfer-Encoding with 501; it is the client's mistake, so a 400 here.
        code, reason = (400, "Bad Request") if error.code == 501 else (error.code, error.reason)
        if code == 413:
            message = f"the request body is larger than {MAX_BODY_BYTES} bytes; send a URL instead"
        else:
            message = f"{error.reason.lower()}: {error.body}"
        log_request(Response(code, {"message": message}), request_id=request_id(None),
                    method=getattr(self.request, "command", None) or "",  # unset when the request line was bad
                    path=getattr(self.request, "path", None) or "", duration_ms=0.0)
        body = json.dumps({"message": message}).encode()
        self.status = f"{code} {reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JsonErrorChannel(HTTPChannel):
    error_task_class = JsonErrorTask


def create_server(
    app, host: str = "127.0.0.1", port: int = 0, threads: int = 4, sock: socket.socket | None = None
) -> waitress.server.BaseWSGIServer:
    """A waitress server that reads no body over the API's limit (checked from Content-Length before reading), on
    `host`:`port` or on `sock`, a socket bound by the parent of several workers."""
    where = {"sockets": [sock]} if sock else {"host": host, "port": port}
    server = waitress.server.create_server(
        app, threads=threads, max_request_body_size=MAX_BODY_BYTES + 1, ident="image-similarity",
        # Waitress reads 8 KB per call and spools bodies over 512 KB to a temporary file, all under the GIL of the
        # thread that serves the socket: 2 ms of a 1 MB request's 19 ms of CPU (bench-perf). The service reads
        # the whole body into memory anyway; at most `connection_limit` (100) bodies of 6 MB can be buffering.
        recv_bytes=256 * 1024, inbuf_overflow=MAX_BODY_BYTES + 1, **where,
    )
    server.channel_class = JsonErrorChannel
    return server


def run_until_terminated(
    server: waitress.server.BaseWSGIServer, stop: threading.Event | None = None, grace: float = SHUTDOWN_GRACE_SECONDS
) -> None:
    """Serve until SIGTERM or SIGINT (or `stop` is set), then close the listening socket, finish the requests in
    flight (up to `grace` seconds) and return."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    tick = server.adj.asyncore_loop_timeout
    while not stop.is_set():
        wasyncore.loop(timeout=tick, map=server._map, count=1)
    log.info("shutting down: no new connections, finishing %d open one(s)", len(server.active_channels))
    wasyncore.dispatcher.close(server)  # the listening socket only; the trigger still wakes the loop for replies
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        busy = [ch for ch in list(server.active_channels.values()) if ch.requests or ch.total_outbufs_len]
        for channel in list(server.active_channels.values()):
            if channel not in busy and channel.request is None:  # idle keep-alive: nothing is lost by closing it
                channel.handle_close()
        if not busy:
            break
        wasyncore.loop(timeout=0.1, map=server._map, count=1)
    server.task_dispatcher.shutdown(timeout=1)
    wasyncore.close_all(server._map)


def local_app(service: ImageSimilarityService, explorer: ExplorerConfig) -> ServiceApp:
    """The API, the collection routes (the local store) and the API Explorer. `EXPLORER_AUTHORIZATION=AWS_IAM` shows
    the explorer as an IAM-protected deployment does (reference only, no "Try it out")."""
    return ServiceApp(service, API_PATH, Explorer(replace(explorer, image_search=True)), routes_factory(service))


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
    workers = workers or _cpu_count()
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
    # The model is loaded before listening, so /ping is only up once it can answer.
    service = build_service(Settings.from_env(processes=workers))
    if predict_path == API_PATH:
        app = local_app(service, explorer or ExplorerConfig.from_env())
        log.info("API Explorer on http://%s:%d/api-explorer/ (%s)", host, port, app.explorer.config.authorization)
    else:
        app = ServiceApp(service, predict_path)
    server = create_server(app, host, port, threads, sock)
    log.info("serving %s on http://%s:%s (model %s)", predict_path, host, server.effective_port, service.model_version)
    run_until_terminated(server)


def bind(host: str, port: int) -> socket.socket:
    """Bound, not yet listening: connections are refused, not queued, until a worker has its model and listens."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    return sock


def run_workers(work: Callable[[], None], count: int, sock: socket.socket) -> int:
    """Run `work` in `count` processes that inherit `sock`; SIGTERM or SIGINT here is passed on to each, which
    finishes its requests in flight. A worker that exits by itself stops the others (0 only if all stopped cleanly
    when told): the orchestrator, or the person at the terminal, restarts the server whole rather than run it short
    of workers."""
    # fork: the workers inherit the bound socket; this process has started no threads and loaded no model.
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_worker, args=(work,), name=f"worker-{i}") for i in range(count)]
    told = threading.Event()

    def stop_all() -> None:
        for process in processes:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    def on_signal(*_: object) -> None:
        told.set()
        stop_all()

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        for process in processes:
            process.start()
        # Once the workers have closed theirs, connections are refused rather than queued for no one.
        sock.close()
        multiprocessing.connection.wait([process.sentinel for process in processes])
        if not told.is_set():
            log.error("a worker exited by itself; stopping the others")
            stop_all()
        for process in processes:
            process.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    clean = told.is_set() and all(process.exitcode == 0 for process in processes)
    return 0 if clean else 1


def _worker(work: Callable[[], None]) -> None:
    # The handlers inherited from the parent would signal the other workers. Until run_until_terminated installs its
    # own, a signal ends a worker that has nothing in flight yet.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    work()
