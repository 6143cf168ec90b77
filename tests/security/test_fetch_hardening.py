"""URL fetching after the red team's round 2 (issue 18): special-purpose address ranges judged by our own list
(finding 7), any failure while fetching a 422 and never a 500 (3), one neutral message for everything below HTTP
(9), DNS lookups and slow origins bounded in time and in capacity (6, 13)."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from image_similarity.core.errors import RequestError
from image_similarity.core.settings import FetchSettings, server_fetch_limits
from image_similarity.sources.http_fetch import FETCH_FAILED, fetch_http, is_public
from image_similarity.sources.image_source import ImageSource
from test_ssrf import LOOPBACK_OK, STRICT, refused, table_resolver


@pytest.mark.parametrize("address", [
    "fec0::1",  # deprecated site-local: Python's tables call it global
    "192.0.0.8", "192.0.0.100", "192.0.0.255",  # the whole IETF protocol assignments /24, not only the /29
    "::ffff:0:10.0.0.1", "::ffff:0:127.0.0.1",  # IPv4-translated (RFC 2765)
    "2001:2::1", "2001::1", "2001:db8::1", "3fff::1", "5f00::1", "100::1", "64:ff9b:1::a00:1",
    "192.88.99.1", "198.18.0.1", "240.0.0.1", "255.255.255.255", "224.0.0.1",
    "2002:0a00:0001::1",  # 6to4 of 10.0.0.1
])
def test_special_purpose_addresses_are_not_public(address):
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8",
                                     "2002:0808:0808::1", "64:ff9b::808:808"])
def test_global_unicast_addresses_are_public(address):
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["fec0::1", "192.0.0.100", "::ffff:0:a9fe:a9fe"])
def test_special_ranges_are_refused_without_connecting(address, connections):
    err = refused("http://images.example.com/a.jpg", resolver=table_resolver({"images.example.com": [address]}))
    assert err.status == 400 and connections == []


class RawServer:
    """A TCP server on 127.0.0.1 that answers every connection with fixed bytes (or drips them)."""

    def __init__(self, answer: bytes, drip: float = 0.0):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.answer, self.drip = answer, drip
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                if not self.drip:
                    conn.sendall(self.answer)
                for byte in self.answer if self.drip else b"":
                    conn.sendall(bytes([byte]))
                    time.sleep(self.drip)
            except OSError:
                pass

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/a.jpg"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw_server() -> Iterator[type[RawServer]]:
    made: list[RawServer] = []

    def make(answer: bytes, drip: float = 0.0) -> RawServer:
        made.append(RawServer(answer, drip))
        return made[-1]

    yield make
    for server in made:
        server.close()


@pytest.mark.parametrize("length", ["\u00b2", "\u0663", "1e3", "-5", "99999999999999999999999"])
def test_an_origins_odd_content_length_is_never_a_500(raw_server, length, service):
    """`²` passes str.isdigit() and then fails int(): it raised ValueError, a 500."""
    server = raw_server(f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\nabc".encode())
    api = type(service)(service.embedder, ImageSource(LOOPBACK_OK))
    response = api.handle(f'{{"url": "{server.url()}"}}')
    assert response.status == 422, response


@pytest.mark.parametrize("answer", [
    b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n",
    b"220 mail.internal.example ESMTP Postfix\r\n",
    b"",
    b"\x16\x03\x01\x00\x05hello",
])
def test_non_http_services_all_get_one_neutral_message(raw_server, answer):
    server = raw_server(answer)
    with pytest.raises(RequestError) as err:
        fetch_http(server.url(), LOOPBACK_OK)
    assert err.value.status == 422 and err.value.message == FETCH_FAILED
    assert b"SSH" not in err.value.message.encode() and "Postfix" not in err.value.message


def test_a_closed_port_gets_the_same_neutral_message():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed once the block ends
    with pytest.raises(RequestError) as err:
        fetch_http(f"http://127.0.0.1:{port}/a.jpg", LOOPBACK_OK)
    assert err.value.message == FETCH_FAILED and "0x" not in err.value.detail


def test_a_dns_lookup_that_hangs_is_given_up_after_the_connect_timeout():
    def hanging(*_args, **_kwargs):
        time.sleep(5)
        return []

    start = time.monotonic()
    with pytest.raises(RequestError) as err:
        fetch_http("http://images.example.com/a.jpg", FetchSettings(connect_timeout=0.5), hanging)
    assert err.value.status == 422 and time.monotonic() - start < 2.0


def test_a_pair_of_dripping_urls_shares_one_deadline(raw_server):
    server = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000, drip=0.05)
    source = ImageSource(FetchSettings(allow_loopback=True, total_timeout=1.5, read_timeout=1.0))
    start = time.monotonic()
    with pytest.raises(RequestError):
        source.read_all((("url_1", server.url()), ("url_2", server.url())))
    assert time.monotonic() - start < 2.5, "each URL got its own 1.5 s"


def test_slow_origins_hold_at_most_the_fetch_slots_and_others_get_a_429(raw_server):
    server = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000, drip=0.05)
    settings = server_fetch_limits(FetchSettings(allow_loopback=True, total_timeout=3.0, read_timeout=2.0), threads=2)
    source = ImageSource(settings)
    assert settings.concurrent_fetches == 4

    def fetch(_: int) -> int:
        try:
            source.read("url", server.url())
        except RequestError as exc:
            return exc.status
        return 200

    start = time.monotonic()
    with ThreadPoolExecutor(7) as pool:
        statuses = list(pool.map(fetch, range(7)))
    assert sorted(statuses) == [422, 422, 422, 422, 429, 429, 429]
    assert time.monotonic() - start < 4.5
    assert STRICT.concurrent_fetches is None  # the CLI and Lambda have no such limit


def test_the_documented_429_is_the_one_the_server_sends():
    from image_similarity.core.contract import openapi_document
    from image_similarity.core.errors import fetch_slots_busy

    responses = openapi_document()["paths"]["/image-similarity"]["post"]["responses"]
    example = responses["429"]["content"]["application/json"]["examples"]["fetch_slots_busy"]["value"]
    assert example == {"message": fetch_slots_busy().message}
