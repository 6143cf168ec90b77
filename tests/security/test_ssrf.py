"""SSRF: every URL that could reach this machine, its network or the cloud's metadata service is refused.

No connection leaves the machine: non-loopback addresses are proven with a stub resolver and a connection recorder
that refuses every connection it sees; real connections go to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from image_similarity.core.errors import RequestError
from image_similarity.core.service import ImageSimilarityService
from image_similarity.core.settings import FetchSettings
from image_similarity.sources.http_fetch import fetch_http
from image_similarity.sources.image_source import ImageSource

STRICT = FetchSettings(total_timeout=2.0, read_timeout=1.0)  # as deployed: loopback refused
LOOPBACK_OK = FetchSettings(allow_loopback=True, total_timeout=2.0, read_timeout=1.0)


def numeric_only(host, port, type=0, **_):
    """The C library's own parser of address spellings (decimal, octal, hex, short forms), and never a DNS query."""
    return socket.getaddrinfo(host, port, type=type, flags=socket.AI_NUMERICHOST)


def table_resolver(table: dict[str, list[str]], calls: list[str] | None = None):
    def resolve(host, port, type=0, **_):
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, f"stub resolver has no entry for {host}")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in table[host]
        ]

    return resolve


def refused(url: str, settings: FetchSettings = STRICT, resolver=numeric_only) -> RequestError:
    with pytest.raises(RequestError) as err:
        fetch_http(url, settings, resolver)
    return err.value


LITERAL_ADDRESSES = [
    "http://127.0.0.1/x.jpg",
    "http://127.8.9.10/",
    "http://0.0.0.0/",
    "http://0/",
    "http://[::1]/",
    "http://[::]/",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://169.254.170.2/v2/credentials",  # the ECS / Lambda container credentials endpoint
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://10.0.0.1/",
    "http://10.255.255.254:8080/",
    "http://172.16.0.1/",
    "http://172.31.255.255/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://198.18.0.1/",  # benchmarking
    "http://192.0.0.170/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a00:1]/",
    "http://[::127.0.0.1]/",  # IPv4-compatible IPv6 (deprecated)
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://[64:ff9b:1::a00:1]/",  # local-use NAT64
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[ff02::1]/",
]
ODD_SPELLINGS_OF_LOOPBACK = [
    "http://2130706433/",  # decimal
    "http://017700000001/",  # octal
    "http://0177.0.0.1/",
    "http://0x7f000001/",  # hex
    "http://0x7f.0.0.1/",
    "http://127.1/",  # short form
    "http://0x7f.1/",
    "http://0xA9FEA9FE/",  # 169.254.169.254 in hex
    "http://2852039166/",  # 169.254.169.254 in decimal
]


@pytest.mark.parametrize("url", LITERAL_ADDRESSES)
def test_ssrf_literal_non_public_addresses_are_refused(url, connections):
    err = refused(url)
    assert err.status == 400 and "only public addresses" in err.message
    assert connections == []


@pytest.mark.parametrize("url", ODD_SPELLINGS_OF_LOOPBACK)
def test_ssrf_decimal_octal_hex_spellings_are_refused(url, connections):
    err = refused(url)
    assert err.status == 400 and "only public addresses" in err.message
    assert connections == []


@pytest.mark.parametrize("url", ["http://[fe80::1%25eth0]/", "http://[fe80::1%25lo]/", "http://[::1%25lo]/"])
def test_ssrf_link_local_with_a_zone_id_never_connects(url, connections):
    assert refused(url).status in (400, 422)
    assert connections == []


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.1.2.3", "172.20.0.5", "192.168.0.10", "169.254.169.254", "fd00:ec2::254", "::1"]
)
def test_ssrf_host_name_resolving_to_a_private_address_is_refused(address, connections):
    err = refused("http://images.example.com/cat.jpg", resolver=table_resolver({"images.example.com": [address]}))
    assert err.status == 400 and address in err.message
    assert connections == []


def test_ssrf_any_private_answer_among_public_ones_is_refused(connections):
    """An attacker's DNS may answer several addresses; the client could pick any, so one bad answer refuses all."""
    resolver = table_resolver({"mixed.example.com": ["93.184.215.14", "10.0.0.7"]})
    assert refused("http://mixed.example.com/", resolver=resolver).status == 400
    assert connections == []


def test_ssrf_dns_rebinding_connects_to_the_checked_address(connections):
    """The name is resolved once per hop and the socket opened to that very address, not to a second lookup."""
    calls: list[str] = []
    answers = iter([["93.184.215.14"], ["127.0.0.1"]])

    def rebinding(host, port, type=0, **_):
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in next(answers)]

    err = refused("http://rebind.example.com/cat.jpg", resolver=rebinding)
    assert err.status == 422  # the (refused) connection to the public address, not a fetch of 127.0.0.1
    assert calls == ["rebind.example.com"]
    assert connections == [("93.184.215.14", 80)]


@pytest.mark.parametrize(
    "url, words",
    [
        ("file:///etc/passwd", "scheme is not supported"),
        ("ftp://example.com/cat.jpg", "scheme is not supported"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "scheme is not supported"),
        ("dict://127.0.0.1:11211/stat", "scheme is not supported"),
        ("http://a@127.0.0.1/", "credentials"),
        ("http://images.example.com@127.0.0.1/", "credentials"),
        ("http://user:pass@images.example.com/", "credentials"),
        ("http://127.0.0.1\\@images.example.com/", "credentials"),  # parsers disagree on the backslash
        ("http:///cat.jpg", "no host"),
        ("http://127.0.0.1:99999/", "invalid URL port"),
    ],
)
def test_ssrf_schemes_userinfo_and_malformed_urls_are_refused(url, words, connections):
    err = refused(url)
    assert err.status == 400 and words in err.message
    assert connections == []


def test_ssrf_fragment_trick_goes_to_the_host_before_it(connections):
    """`http://public#@127.0.0.1` is a fetch of `public`: the connection goes where the checked name points."""
    refused("http://images.example.com#@127.0.0.1/", resolver=table_resolver({"images.example.com": ["93.184.215.14"]}))
    assert connections == [("93.184.215.14", 80)]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://x/", "ftp://x/", "dict://x/", "data:,x"])
def test_ssrf_other_schemes_are_refused_by_the_api(service_strict: ImageSimilarityService, url):
    response = service_strict.handle(json.dumps({"url": url}))
    assert response.status == 400 and "http://, https:// or s3://" in response.body["message"]


# --- redirects from a public-looking name (served on 127.0.0.1) to forbidden targets --------------------------------

class Redirector:
    """A server on 127.0.0.1 that answers every path with a redirect to `target`."""

    def __init__(self) -> None:
        self.target = ""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(302)
                self.send_header("Location", owner.target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]


@pytest.fixture(scope="module")
def redirector() -> Iterator[Redirector]:
    r = Redirector()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.mark.parametrize(
    "target, status",
    [
        ("http://169.254.169.254/latest/meta-data/", 400),
        ("http://[fd00:ec2::254]/latest/meta-data/", 400),
        ("http://10.0.0.1/", 400),
        ("http://192.168.1.1/", 400),
        ("http://[::ffff:10.0.0.1]/", 400),
        ("http://0xA9FEA9FE/", 400),
        ("http://internal.example.com/", 400),  # a name resolving to a private address
        ("file:///etc/passwd", 400),
        ("gopher://127.0.0.1:6379/_", 400),
        ("http://a@10.0.0.1/", 400),
        ("http://[::1", 422),  # an unparseable Location is the server's fault
    ],
)
def test_ssrf_redirect_from_a_public_looking_url_to_a_forbidden_target_is_refused(redirector, target, status):
    redirector.target = target
    # The first hop's name stands for a public host; the test-only switch lets it be served on 127.0.0.1.
    resolver = table_resolver({"images.example.com": ["127.0.0.1"], "internal.example.com": ["10.9.8.7"]})

    def resolve(host, port, type=0, **kwargs):
        try:
            return resolver(host, port, type=type)
        except socket.gaierror:
            return numeric_only(host, port, type=type)

    with pytest.raises(RequestError) as err:
        fetch_http(f"http://images.example.com:{redirector.port}/cat.jpg", LOOPBACK_OK, resolve)
    assert err.value.status == status


def test_ssrf_redirect_loop_ends_at_the_cap(redirector):
    redirector.target = "/again"
    with pytest.raises(RequestError) as err:
        fetch_http(f"http://127.0.0.1:{redirector.port}/", LOOPBACK_OK)
    assert err.value.status == 422 and "redirected more than 3 times" in err.value.message


# --- slow, endless and oversized answers (real servers, 127.0.0.1 only) ---------------------------------------------

def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Quiet(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class HeaderDrip(Quiet):
    """Sends a status line, then one header byte every 0.2 s: every single read succeeds, the whole never ends."""

    def do_GET(self) -> None:
        try:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            for _ in range(200):
                self.wfile.write(b"a")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass


class Endless(Quiet):
    """A chunked body with no end and no declared length."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"\xff" * 65536
        try:
            while True:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass


class BodyDrip(Quiet):
    """Headers at once, then one body byte a second, with no Content-Length (the end would be the close)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(30):
                self.wfile.write(b"\xff")
                self.wfile.flush()
                time.sleep(1.0)
        except OSError:
            pass


@pytest.mark.parametrize("handler", [HeaderDrip, BodyDrip], ids=["headers", "body"])
def test_ssrf_slow_server_dripping_bytes_ends_with_a_422_at_the_deadline(handler):
    server = serve(handler)
    settings = FetchSettings(allow_loopback=True, total_timeout=1.5, read_timeout=1.2)
    start = time.monotonic()
    try:
        with pytest.raises(RequestError) as err:
            fetch_http(f"http://127.0.0.1:{server.server_address[1]}/slow.jpg", settings)
        elapsed = time.monotonic() - start
    finally:
        server.shutdown()
        server.server_close()
    assert elapsed < 2.2
    assert err.value.status == 422 and "longer than 1.5 s" in err.value.message


def test_ssrf_endless_body_ends_with_a_422_at_the_byte_cap():
    server = serve(Endless)
    settings = FetchSettings(allow_loopback=True, total_timeout=5.0, max_bytes=2 * 1024 * 1024)
    start = time.monotonic()
    try:
        with pytest.raises(RequestError) as err:
            fetch_http(f"http://127.0.0.1:{server.server_address[1]}/endless.jpg", settings)
        elapsed = time.monotonic() - start
    finally:
        server.shutdown()
        server.server_close()
    assert elapsed < 5.0
    assert err.value.status == 422 and "larger than the 2097152 byte limit" in err.value.message


# --- s3:// --------------------------------------------------------------------------------------------------------

class RecordingS3:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def get_object(self, Bucket: str, Key: str) -> dict:
        self.calls.append((Bucket, Key))
        raise AssertionError("a malformed S3 URL must be refused before any S3 call")


@pytest.mark.parametrize(
    "url, words",
    [
        ("s3://", "bucket name breaks S3's naming rules"),
        ("s3://UPPER-case/key.jpg", "bucket name breaks S3's naming rules"),
        ("s3://ab/key.jpg", "bucket name breaks S3's naming rules"),
        ("s3://-leading-dash/key.jpg", "bucket name breaks S3's naming rules"),
        ("s3://bucket_underscore/key.jpg", "bucket name breaks S3's naming rules"),
        ("s3://user@bucket/key.jpg", "bucket name breaks S3's naming rules"),
        ("s3://bucket:443/key.jpg", "bucket name breaks S3's naming rules"),
        ("s3://[bucket/key.jpg", "invalid S3 URL"),
        ("s3://my-bucket", "object key"),
        ("s3://my-bucket/", "object key"),
        ("s3://my-bucket/" + "k" * 1025, "object key"),
    ],
)
def test_ssrf_malformed_s3_urls_are_refused_before_any_s3_call(service, url, words):
    s3 = RecordingS3()
    response = ImageSimilarityService(service.embedder, ImageSource(STRICT, s3_client=s3)).handle(
        json.dumps({"url": url})
    )
    assert response.status == 400 and words in response.body["message"], response
    assert s3.calls == []


def test_ssrf_loopback_switch_is_off_by_default():
    assert FetchSettings().allow_loopback is False
    assert ImageSource().settings.allow_loopback is False


@pytest.fixture(scope="module")
def service_strict(service) -> ImageSimilarityService:
    """The test service's model with the deployed fetch settings (no loopback)."""
    return ImageSimilarityService(service.embedder, ImageSource(STRICT))
