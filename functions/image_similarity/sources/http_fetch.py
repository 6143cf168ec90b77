"""Fetch an image over http(s) without letting a caller reach private networks (SSRF).

Every hop (the URL and each redirect) is resolved once; every address it resolves to must be public, and the
connection goes to that checked address (TLS still verifies the host name), so a second DNS answer cannot rebind
the request to an internal host. One deadline covers the whole fetch, headers and redirects included.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

from image_similarity.core.contract import URL_FORM
from image_similarity.core.errors import RequestError, bad_request, reason, unusable_image
from image_similarity.core.settings import FetchSettings

Resolver = Callable[..., list]
REDIRECTS = (301, 302, 303, 307, 308)
USER_AGENT = "image-similarity/1"
DIGITS = re.compile(r"^[0-9]{1,20}$")
# One message for every way a fetch can fail below HTTP (no such host, refused, reset, not HTTP, TLS): which of them
# happened is a port scanner's answer, so it goes to the log only.
FETCH_FAILED = "could not fetch the image URL: no usable HTTP answer from its host"

# Addresses are judged by an explicit allow-list, not by the Python version's tables: global unicast, outside IANA's
# special-purpose registries (https://www.iana.org/assignments/iana-ipv4-special-registry,
# https://www.iana.org/assignments/iana-ipv6-special-registry), all of which are refused, globally reachable or not.
V4_SPECIAL = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24", "192.88.99.0/24", "192.168.0.0/16", "192.175.48.0/24",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
))
V6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
V6_SPECIAL = tuple(ipaddress.ip_network(n) for n in (
    "2001::/23", "2001:db8::/32", "2620:4f:8000::/48", "3fff::/20",
))
# IPv6 forms that carry an IPv4 address in their low 32 bits; they are judged by that address. (6to4, 2002::/16,
# carries it in bits 16-48.)
V4_IN_LOW_BITS = tuple(ipaddress.ip_network(n) for n in ("::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96"))
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
# getaddrinfo has no timeout of its own; lookups run here and are waited for up to the connect timeout.
_lookups = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dns")


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True only for global unicast addresses outside every special-purpose range; v4 inside v6 is judged as v4."""
    if isinstance(address, ipaddress.IPv4Address):
        return not any(address in network for network in V4_SPECIAL)
    if any(address in network for network in V4_IN_LOW_BITS):
        return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address in SIX_TO_FOUR:
        return is_public(address.sixtofour)
    return address in V6_GLOBAL_UNICAST and not any(address in network for network in V6_SPECIAL)


def resolve_checked(host: str, port: int, settings: FetchSettings, resolver: Resolver) -> str:
    """Resolve `host` once and return one address to connect to, refusing if any answer is not public."""
    lookup = _lookups.submit(resolver, host, port, type=socket.SOCK_STREAM)
    try:
        answers = lookup.result(timeout=settings.connect_timeout)
    except FutureTimeout as exc:
        raise unusable_image(FETCH_FAILED, detail=f"DNS lookup took over {settings.connect_timeout:g} s") from exc
    except (OSError, UnicodeError) as exc:
        raise unusable_image(FETCH_FAILED, detail=f"DNS lookup failed: {reason(exc)}") from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in answers]
    if not addresses:
        raise unusable_image(FETCH_FAILED, detail="DNS lookup found no address")
    for address in addresses:
        allowed = is_public(address) or (settings.allow_loopback and address.is_loopback)
        if not allowed:
            raise bad_request(
                f"the URL's host resolves to {address}, a private, loopback, link-local or reserved address; "
                "only public addresses can be fetched"
            )
    return str(addresses[0])


def fetch_http(url: str, settings: FetchSettings, resolver: Resolver = socket.getaddrinfo,
               deadline: float | None = None) -> bytes:
    """The image at `url`, within `deadline` (time.monotonic(); by default the total timeout from now). Anything that
    goes wrong on the way is the URL's problem: a 4xx, never a 500."""
    deadline = deadline if deadline is not None else time.monotonic() + settings.total_timeout
    try:
        return _fetch(url, settings, resolver, deadline)
    except RequestError:
        raise
    except Exception as exc:  # whatever a remote host can make urllib3, ssl or a parser raise
        _check_deadline(deadline, settings)
        raise unusable_image(FETCH_FAILED, detail=f"{type(exc).__name__}: {reason(exc)}") from exc


def _fetch(url: str, settings: FetchSettings, resolver: Resolver, deadline: float) -> bytes:
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
        raise unusable_image("the image URL redirected to an invalid URL", detail=reason(exc)) from exc


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
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


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
        raise bad_request("invalid URL: it could not be split into scheme, host and path") from exc
    if parts.scheme not in ("http", "https"):
        raise bad_request(f"the URL's scheme is not supported: use {URL_FORM}")
    if parts.username is not None or parts.password is not None:
        raise bad_request("URLs with credentials (user@host) are not supported")
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise bad_request("invalid URL port: it must be a number from 0 to 65535") from exc
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
    except Exception:
        pool.close()
        raise


def _read_capped(response: urllib3.BaseHTTPResponse, settings: FetchSettings, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if DIGITS.match(declared) and int(declared) > settings.max_bytes:
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
        raise unusable_image("could not download the image URL: the connection broke", detail=reason(exc)) from exc


def _check_deadline(deadline: float, settings: FetchSettings) -> None:
    if time.monotonic() >= deadline:
        raise unusable_image(f"the image URL took longer than {settings.total_timeout:g} s to download")

