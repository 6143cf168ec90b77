"""Fetch an image over http(s) without letting a caller reach private networks (SSRF).

Every hop (the URL and each redirect) is resolved once; every address it resolves to must be public, and the
connection goes to that checked address (TLS still verifies the host name), so a second DNS answer cannot rebind
the request to an internal host. One deadline covers the whole fetch, headers and redirects included.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

from image_similarity.core.errors import bad_request, unusable_image
from image_similarity.core.settings import FetchSettings

Resolver = Callable[..., list]
REDIRECTS = (301, 302, 303, 307, 308)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Python counts these as global, but they only make sense inside a network: IPv4-compatible (deprecated, ::a.b.c.d)
# and local-use NAT64 (RFC 8215), whose v4 part may be any private address.
NON_PUBLIC_V6 = (ipaddress.ip_network("::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
USER_AGENT = "image-similarity/1"


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for globally routable unicast addresses; v4 addresses embedded in v6 are judged as v4."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
        if any(address in network for network in NON_PUBLIC_V6):
            return False
    return address.is_global and not address.is_multicast


def resolve_checked(host: str, port: int, settings: FetchSettings, resolver: Resolver) -> str:
    """Resolve `host` once and return one address to connect to, refusing if any answer is not public."""
    try:
        answers = resolver(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise unusable_image(f"could not resolve host {host!r}: {exc}") from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in answers]
    if not addresses:
        raise unusable_image(f"host {host!r} has no address")
    for address in addresses:
        allowed = is_public(address) or (settings.allow_loopback and address.is_loopback)
        if not allowed:
            raise bad_request(
                f"URL host {host!r} resolves to {address}, a private, loopback, link-local or reserved address; "
                "only public addresses can be fetched"
            )
    return str(addresses[0])


def fetch_http(url: str, settings: FetchSettings, resolver: Resolver = socket.getaddrinfo) -> bytes:
    deadline = time.monotonic() + settings.total_timeout
    for _ in range(settings.max_redirects + 1):
        pool, response = _request(url, settings, resolver, deadline)
        with pool:
            try:
                if response.status in REDIRECTS and response.headers.get("Location"):
                    url = _redirect_target(url, response.headers["Location"])
                    continue
                if response.status != 200:
                    raise unusable_image(f"the image URL answered HTTP {response.status}; it must answer 200")
                return _read_capped(response, settings, deadline)
            finally:
                response.release_conn()
    raise unusable_image(f"the image URL redirected more than {settings.max_redirects} times")


def _redirect_target(url: str, location: str) -> str:
    try:
        return urljoin(url, location)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise unusable_image(f"the image URL redirected to an invalid URL: {exc}") from exc


class _DeadlineMixin:
    """Shuts the socket down when the fetch's deadline passes. Read timeouts apply to one read each, so without
    this a server sending one byte a second (in the headers too) could hold the request for ever."""

    def __init__(self, *args, deadline: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.deadline = deadline
        self.watchdog: threading.Timer | None = None

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        self.watchdog = threading.Timer(max(0.0, self.deadline - time.monotonic()), _shut, (sock,))
        self.watchdog.daemon = True
        self.watchdog.start()
        return sock

    def close(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        super().close()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


class _HTTPConnection(_DeadlineMixin, HTTPConnection):
    pass


class _HTTPSConnection(_DeadlineMixin, HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def _request(
    url: str, settings: FetchSettings, resolver: Resolver, deadline: float
) -> tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise bad_request(f"invalid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise bad_request(f"URL scheme {parts.scheme!r} is not supported: use http://, https:// or s3://")
    if parts.username is not None or parts.password is not None:
        raise bad_request("URLs with credentials (user@host) are not supported")
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise bad_request(f"invalid URL port: {exc}") from exc
    if not host:
        raise bad_request("the URL has no host name")
    address = resolve_checked(host, port, settings, resolver)
    timeout = urllib3.Timeout(connect=settings.connect_timeout, read=settings.read_timeout)
    pool_args = {"port": port, "timeout": timeout, "retries": False, "maxsize": 1, "deadline": deadline}
    if parts.scheme == "https":
        pool = _HTTPSPool(address, server_hostname=host, assert_hostname=host, cert_reqs="CERT_REQUIRED", **pool_args)
    else:
        pool = _HTTPPool(address, **pool_args)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # Credentials were refused above, so netloc is exactly "host[:port]" as the URL spelled it.
    headers = {"Host": parts.netloc, "User-Agent": USER_AGENT, "Accept": "image/*"}
    try:
        return pool, pool.urlopen("GET", path, headers=headers, redirect=False, preload_content=False, retries=False)
    except urllib3.exceptions.HTTPError as exc:
        pool.close()
        _check_deadline(deadline, settings)
        raise unusable_image(f"could not fetch the image URL: {_describe(exc)}") from exc


def _read_capped(response: urllib3.BaseHTTPResponse, settings: FetchSettings, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > settings.max_bytes:
        raise unusable_image(f"the image at the URL is {declared} bytes; the limit is {settings.max_bytes} bytes")
    chunks, total = [], 0
    try:
        while True:
            _check_deadline(deadline, settings)
            chunk = response.read1(64 * 1024)
            if not chunk:
                _check_deadline(deadline, settings)  # the watchdog's shutdown looks like the end of the body
                return b"".join(chunks)
            total += len(chunk)
            if total > settings.max_bytes:
                raise unusable_image(f"the image at the URL is larger than the {settings.max_bytes} byte limit")
            chunks.append(chunk)
    except urllib3.exceptions.HTTPError as exc:
        _check_deadline(deadline, settings)
        raise unusable_image(f"could not download the image URL: {_describe(exc)}") from exc


def _check_deadline(deadline: float, settings: FetchSettings) -> None:
    if time.monotonic() >= deadline:
        raise unusable_image(f"the image URL took longer than {settings.total_timeout:g} s to download")


def _describe(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(reason)[:200]
