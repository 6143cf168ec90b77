"""The local server as `image-similarity serve` runs it: bodies over the limit get a JSON 413 before they are read,
malformed HTTP gets a JSON 4xx, and SIGTERM finishes the requests in flight before the process exits."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from helpers import free_port
from image_similarity.adapters.http_server import create_server
from image_similarity.adapters.local_server import API_PATH
from image_similarity.adapters.shutdown import run_until_terminated
from image_similarity.adapters.wsgi import ServiceApp
from image_similarity.core.settings import MAX_BODY_BYTES


@pytest.fixture(scope="module")
def local_server(service) -> Iterator[tuple[str, int]]:
    server = create_server(ServiceApp(service, API_PATH), port=0)
    stop = threading.Event()
    thread = threading.Thread(target=run_until_terminated, args=(server, stop, 5.0), daemon=True)
    thread.start()
    yield "127.0.0.1", server.effective_port
    stop.set()
    thread.join(10)


def exchange(address: tuple[str, int], head: bytes, body: bytes = b"") -> tuple[int, dict]:
    """Send raw HTTP and read the answer; returns (status, JSON body)."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(head + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data:
                headers, _, rest = data.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in headers.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    None,
                )
                if length is not None and len(rest) >= length:
                    break
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.partition(b"\r\n\r\n")[2])


def test_server_body_over_6_mb_declared_is_a_json_413_before_it_is_read(local_server):
    head = f"POST {API_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n"
    status, body = exchange(local_server, head.encode())  # no body sent at all: the header alone decides
    assert status == 413 and str(MAX_BODY_BYTES) in body["message"]


def test_server_chunked_body_over_6_mb_is_a_json_413(local_server):
    head = f"POST {API_PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    chunk = b"A" * (1024 * 1024)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(7)) + b"0\r\n\r\n"
    status, body = exchange(local_server, head, chunks)
    assert status == 413 and str(MAX_BODY_BYTES) in body["message"]


def test_server_body_of_exactly_6_mb_reaches_the_api(local_server):
    payload = json.dumps({"img": "A" * (MAX_BODY_BYTES - 11)}).encode()
    assert len(payload) == MAX_BODY_BYTES
    response = requests.post(f"http://{local_server[0]}:{local_server[1]}{API_PATH}", data=payload, timeout=30)
    assert response.status_code in (400, 422) and "message" in response.json()


@pytest.mark.parametrize(
    "head",
    [
        b"POST /image-similarity HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /image-similarity HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"POST /image-similarity HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /image-similarity HTTP/1.1\r\nBad Header\r\n\r\n",
        b"POST /image-similarity HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    ],
    ids=["length-not-a-number", "two-lengths", "bad-chunk", "bad-header-line", "unknown-transfer-encoding"],
)
def test_server_malformed_http_gets_a_json_400(local_server, head):
    status, body = exchange(local_server, head)
    assert status == 400 and body["message"]


# --- graceful shutdown ---------------------------------------------------------------------------------------------

class SlowImage(BaseHTTPRequestHandler):
    """Serves an image after a 2 s pause, so a request is surely in flight when the server is told to stop."""

    image = b""

    def do_GET(self) -> None:
        time.sleep(2.0)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.image)))
        self.end_headers()
        self.wfile.write(self.image)

    def log_message(self, *args) -> None:
        pass


def test_server_sigterm_finishes_requests_in_flight_then_exits(cat_jpeg):
    SlowImage.image = cat_jpeg
    images = ThreadingHTTPServer(("127.0.0.1", 0), SlowImage)
    threading.Thread(target=images.serve_forever, daemon=True).start()
    port = free_port()
    env = {**os.environ, "IMAGE_SIMILARITY_ALLOW_LOOPBACK_URLS": "1", "IMAGE_SIMILARITY_THREADS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "image_similarity.adapters.cli", "serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if requests.get(f"{base}/ping", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        url = f"http://127.0.0.1:{images.server_address[1]}/cat.jpg"
        with ThreadPoolExecutor(3) as pool:
            in_flight = [pool.submit(requests.post, base + API_PATH, json={"url": url}, timeout=30) for _ in range(3)]
            time.sleep(0.8)
            server.send_signal(signal.SIGTERM)
            answers = [f.result() for f in in_flight]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert all(len(a.json()["result"]) == 512 for a in answers)
        assert server.wait(timeout=15) == 0
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{base}/ping", timeout=2)
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
        images.shutdown()
        images.server_close()
