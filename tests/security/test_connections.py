"""Idle and slow clients cost the server a file descriptor, not a thread (finding 1 of issue 18): /ping answers at
once while 1,000 idle and 200 slowloris connections are held, a request whose head and body do not arrive in time
is cut off, bodies being uploaded wait on disk, and ambiguous framing is refused."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from helpers import b64
from image_similarity.adapters import http_server
from image_similarity.adapters.http_server import ApiServer, create_server
from image_similarity.adapters.local_server import API_PATH
from image_similarity.adapters.shutdown import run_until_terminated
from image_similarity.adapters.wsgi import ServiceApp
from image_similarity.core.settings import MAX_BODY_BYTES

SLOW_HEAD = f"POST {API_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()


@pytest.fixture(scope="module")
def server(service) -> Iterator[ApiServer]:
    server = create_server(ServiceApp(service, API_PATH), port=0, threads=2)
    stop = threading.Event()
    thread = threading.Thread(target=run_until_terminated, args=(server, stop, 2.0), daemon=True)
    thread.start()
    yield server
    stop.set()
    thread.join(10)


@pytest.fixture
def address(server) -> tuple[str, int]:
    return "127.0.0.1", server.effective_port


def wait_until_held(server: ApiServer, count: int) -> None:
    deadline = time.monotonic() + 20
    while len(server.active_channels) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(server.active_channels) >= count


def open_many(address: tuple[str, int], count: int, first: bytes = b"") -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(address, timeout=5)
        if first:
            sock.sendall(first)
        socks.append(sock)
    return socks


def read_answer(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def rss_mb() -> float:
    return int(re.search(r"^VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE).group(1)) / 1024


def test_ping_and_the_api_answer_while_1000_idle_and_200_slowloris_connections_are_held(server, address, cat_jpeg):
    base = f"http://{address[0]}:{address[1]}"
    idle = open_many(address, 1000)
    slow = open_many(address, 200, SLOW_HEAD)
    try:
        wait_until_held(server, 1200)
        for _ in range(3):  # the slow ones keep sending a header line now and then
            for sock in slow:
                sock.sendall(b"X-a: b\r\n")
            start = time.monotonic()
            assert requests.get(f"{base}/ping", timeout=5).status_code == 200
            took = time.monotonic() - start
            print(f"/ping with 1,200 connections held: {took * 1000:.0f} ms")
            assert took < 1.0
        start = time.monotonic()
        answer = requests.post(base + API_PATH, json={"img": b64(cat_jpeg)}, timeout=10)
        assert answer.status_code == 200 and time.monotonic() - start < 5.0
    finally:
        for sock in idle + slow:
            sock.close()


def test_a_request_whose_head_drips_is_cut_off_at_the_deadline(address, monkeypatch):
    monkeypatch.setattr(http_server, "REQUEST_DEADLINE_SECONDS", 1.0)
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(SLOW_HEAD)
        start = time.monotonic()
        with pytest.raises(OSError):
            while time.monotonic() - start < 8:  # one byte every 0.2 s keeps any idle timeout from firing
                sock.sendall(b"X")
                time.sleep(0.2)
        assert time.monotonic() - start < 4.0


def test_uploads_held_one_byte_short_wait_on_disk_not_in_memory(address):
    body = b"A" * (MAX_BODY_BYTES - 1)
    head = f"POST {API_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {MAX_BODY_BYTES}\r\n\r\n".encode()
    before = rss_mb()
    socks = open_many(address, 30)
    try:
        for sock in socks:
            sock.sendall(head + body)
        time.sleep(1.0)  # the event loop reads what was sent
        assert rss_mb() - before < 60, "30 bodies of 6 MB held in memory would be 180 MB"
    finally:
        for sock in socks:
            sock.close()


def test_a_declared_body_over_the_limit_is_refused_before_100_continue(address):
    head = (f"POST {API_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {7 * 1024 * 1024}\r\n"
            "Expect: 100-continue\r\n\r\n").encode()
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(head)
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert b"100 Continue" not in answer


def test_content_length_with_transfer_encoding_is_refused_and_nothing_after_it_is_served(address):
    smuggled = (f"POST {API_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
                "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").encode()
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(smuggled)
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 400")
    assert answer.count(b"HTTP/1.1") == 1, answer


def test_a_malformed_header_line_is_not_echoed(address):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(
            f"POST {API_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header X-Amz-Signature=5ec12e7\r\n\r\n".encode()
        )
        answer = read_answer(sock)
    assert b" 400 " in answer.split(b"\r\n")[0] and b"5ec12e7" not in answer
