"""The HTTP front of the local and SageMaker servers: waitress, set up so that idle and slow clients cost a file
descriptor, not a thread. Waitress reads every request on one event loop and hands it to a thread only once its head
and body have arrived; this module bounds what the loop holds meanwhile (connections, time, memory), answers
`/ping` on the loop itself, and writes waitress's own errors as the API's JSON.

The same shape as SageMaker's own bring-your-own-container pattern, NGINX with its timeouts in front of gunicorn
(https://aws.amazon.com/premiumsupport/knowledge-center/sagemaker-upstream-timed-out-header/), in one process: the
event loop plays NGINX's part, the threads gunicorn's."""

from __future__ import annotations

import json
import resource
import socket
import time

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher

from image_similarity.core.errors import RequestError, body_too_large
from image_similarity.core.request_log import log_request, request_id
from image_similarity.core.service import error_response
from image_similarity.core.settings import MAX_BODY_BYTES

# A request's head and body must arrive within this many seconds of its first byte (API Gateway's default integration
# timeout is 29 s, https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html): a client sending a byte
# now and then is cut off instead of held for ever.
REQUEST_DEADLINE_SECONDS = 30.0
# A keep-alive connection with no request in progress is closed after this long (waitress's default is 120 s).
IDLE_SECONDS = 30.0
# How often the event loop looks for connections past those limits.
SWEEP_SECONDS = 1.0
# Connections one worker holds at most; each costs a file descriptor and about 10 KB while it sends nothing.
CONNECTION_LIMIT = 4096
# A body larger than this is buffered in a temporary file while it arrives, not in memory.
SPILL_BYTES = 64 * 1024
# Connections accepted per turn of the event loop (waitress takes one): a turn costs time in proportion to the
# connections held, so a backlog of 1,000 took over a second to drain one at a time.
ACCEPT_BATCH = 64
PING_PATH = "/ping"


class JsonErrorTask(ErrorTask):
    """Waitress's own error answers (413 for a body over the limit, 400 for a malformed request) as API JSON."""

    def execute(self) -> None:
        error = self.request.error
        # Waitress answers an unknown Transfer-Encoding with 501; it is the client's mistake, so a 400 here.
        code, reason = (400, "Bad Request") if error.code == 501 else (error.code, error.reason)
        # Waitress quotes a malformed header line or method in its message: the caller's text, never echoed.
        said = error.body.split('"')[0].strip()
        response = error_response(body_too_large() if code == 413 else RequestError(code, f"{reason.lower()}: {said}"))
        log_request(response, request_id=request_id(None),
                    method=getattr(self.request, "command", None) or "",  # unset when the request line was bad
                    path=getattr(self.request, "path", None) or "", duration_ms=0.0)
        body = json.dumps(response.body).encode()
        self.status = f"{code} {reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class StrictParser(HTTPRequestParser):
    """Refuses a request with both Content-Length and Transfer-Encoding: front servers may frame it differently, so
    the rest of its body could be read as a second request (RFC 9112, section 6.3)."""

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        if self.chunked and "CONTENT_LENGTH" in self.headers:
            raise ParsingError("a request may not have both Content-Length and Transfer-Encoding")


class Channel(HTTPChannel):
    """One client connection; `started` is when the request being received sent its first byte. A `/ping` read
    by the event loop is answered there once the parser has let go of the channel (`ping_ready`)."""

    error_task_class = JsonErrorTask
    parser_class = StrictParser
    started: float | None = None
    receiving = False
    ping_ready = False

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.started = time.time()
        self.receiving = True
        try:
            result = super().received(data)
        finally:
            self.receiving = False
        if self.request is None:
            self.started = None
        if self.ping_ready:
            self.ping_ready = False
            self.service()
        return result

    def send_continue(self) -> None:
        # A request already refused (a declared body over the limit) is answered at once: its body is never invited.
        if self.request.error is None:
            super().send_continue()


class ApiServer(TcpWSGIServer):
    channel_class = Channel

    def handle_accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            held = len(self._map)
            super().handle_accept()
            if len(self._map) == held or len(self._map) >= self.adj.connection_limit:  # none waiting, or full
                break

    def maintenance(self, now: float) -> None:
        """Closes idle connections (waitress's own sweep) and those whose request is past its deadline."""
        super().maintenance(now)
        for channel in list(self.active_channels.values()):
            if channel.started is not None and now - channel.started > REQUEST_DEADLINE_SECONDS:
                channel.will_close = True

    def add_task(self, channel: Channel) -> None:
        """`/ping` read by the event loop is answered on it, so a health check never waits behind inference or
        fetches; the rest goes to the threads."""
        request = channel.requests[0]
        if channel.receiving and request.error is None and request.command in ("GET", "HEAD") \
                and request.path == PING_PATH:
            channel.ping_ready = True
        else:
            super().add_task(channel)


def connection_limit() -> int:
    """CONNECTION_LIMIT, within the process's file descriptors (raised to the hard limit if needed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = CONNECTION_LIMIT + 256  # the listening socket, the trigger, temporary files, the model, logs
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return min(CONNECTION_LIMIT, soft - 256) if soft != resource.RLIM_INFINITY else CONNECTION_LIMIT


def create_server(
    app, host: str = "127.0.0.1", port: int = 0, threads: int = 4, sock: socket.socket | None = None
) -> ApiServer:
    """An API server on `host`:`port`, or on `sock`, a socket bound by the parent of several workers. No body over
    the API's limit is read (checked from Content-Length before reading)."""
    adj = Adjustments(
        host=host, port=port, threads=threads, ident="image-similarity", max_request_body_size=MAX_BODY_BYTES + 1,
        connection_limit=connection_limit(), channel_timeout=IDLE_SECONDS, cleanup_interval=SWEEP_SECONDS,
        inbuf_overflow=SPILL_BYTES, asyncore_use_poll=True,  # select() stops at descriptor 1024
        # Waitress reads 8 KB per call by default; 256 KB halves the loop's CPU for a 1 MB body (bench-perf).
        recv_bytes=256 * 1024,
    )
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(threads)
    where = {"sockinfo": (sock.family, sock.type, sock.proto, sock.getsockname()), "bind_socket": False} if sock \
        else {}
    return ApiServer(app, {}, True, sock, dispatcher=dispatcher, adj=adj, **where)
