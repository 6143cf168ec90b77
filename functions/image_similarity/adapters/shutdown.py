"""Graceful shutdown: on SIGTERM or SIGINT stop accepting, finish the requests in flight, then return."""

from __future__ import annotations

import logging
import signal
import threading
import time

from waitress import wasyncore
from waitress.server import BaseWSGIServer

# How long SIGTERM waits for requests in flight; SageMaker and ECS allow 30 s before SIGKILL.
SHUTDOWN_GRACE_SECONDS = 25.0
log = logging.getLogger(__name__)


def run_until_terminated(
    server: BaseWSGIServer, stop: threading.Event | None = None, grace: float = SHUTDOWN_GRACE_SECONDS
) -> None:
    """Serve until SIGTERM or SIGINT (or `stop` is set), then close the listening socket, finish the requests in
    flight (up to `grace` seconds) and return."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    tick, use_poll = server.adj.asyncore_loop_timeout, server.adj.asyncore_use_poll
    while not stop.is_set():
        wasyncore.loop(timeout=tick, map=server._map, count=1, use_poll=use_poll)
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
        wasyncore.loop(timeout=0.1, map=server._map, count=1, use_poll=use_poll)
    server.task_dispatcher.shutdown(timeout=1)
    wasyncore.close_all(server._map)
