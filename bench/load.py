"""Load and soak test of the local server (`image-similarity serve`) on 127.0.0.1 only.

Starts the server in a subprocess, drives it at capacity (more client threads than server threads) with a fixed mix
of valid and invalid requests for a bounded time, samples the server's RSS every second, then stops it with SIGTERM
and checks that it exits cleanly. Fails (exit 1) on any 5xx, any dropped connection or an unclean exit.

    python bench/load.py --duration 180 --markdown bench/LOAD.md
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from base64 import b64encode
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import requests
from PIL import Image
from skimage import data as photos

API_PATH = "/image-similarity"
MAX_BODY_BYTES = 6 * 1024 * 1024


def jpeg(pixels: np.ndarray, size: int, quality: int = 90) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).resize((size, size * pixels.shape[0] // pixels.shape[1])).save(out, "JPEG", quality=quality)
    return out.getvalue()


def png_header_bomb() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 100)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


class ImageHost:
    """Serves the test images on 127.0.0.1 for the `url` requests."""

    def __init__(self, files: dict[str, bytes]) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = files.get(self.path.split("?")[0])
                self.send_response(200 if body else 404)
                body = body or b"missing"
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # the fetcher closes its connections after each image; the resets are expected

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"


def request_mix(host: ImageHost, cat: bytes, coffee: bytes) -> list[tuple[str, int, bytes, set[int]]]:
    """(kind, weight, body, accepted statuses). Weights follow a public API's plausible traffic: mostly valid."""

    def enc(raw: bytes) -> str:
        return b64encode(raw).decode()

    return [
        ("embed base64", 30, json.dumps({"img": enc(cat)}).encode(), {200}),
        ("embed url", 15, json.dumps({"url": f"{host.base}/cat.jpg?X-Amz-Signature=abc"}).encode(), {200}),
        ("similarity pair", 15, json.dumps({"img_1": enc(cat), "url_2": f"{host.base}/coffee.jpg"}).encode(), {200}),
        ("invalid JSON", 8, b'{"img": ', {400}),
        ("unknown field", 5, b'{"image": "abc"}', {400}),
        ("invalid base64", 5, b'{"img": "@@@@"}', {400}),
        ("forbidden URL", 6, b'{"url": "http://169.254.169.254/latest/meta-data/"}', {400}),
        ("missing URL", 4, json.dumps({"url": f"{host.base}/nope.jpg"}).encode(), {422}),
        ("unsupported format", 4, json.dumps({"img": enc(b"GIF89a" + b"\0" * 64)}).encode(), {422}),
        ("50000 px header bomb", 4, json.dumps({"img": enc(png_header_bomb())}).encode(), {422}),
        ("truncated JPEG", 3, json.dumps({"img": enc(cat[: len(cat) // 3])}).encode(), {422}),
        ("body over 6 MB", 1, b'{"img": "' + b"A" * MAX_BODY_BYTES + b'"}', {413}),
    ]


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter = field(default_factory=Counter)
    unexpected: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)

    def add(self, kind: str, status: int | None, seconds: float, expected: set[int]) -> None:
        with self.lock:
            if status is None:
                self.dropped[kind] += 1
                return
            self.latencies[kind].append(seconds)
            self.statuses[status] += 1
            if status not in expected:
                self.unexpected[(kind, status)] += 1


def client(url: str, mix: list, tally: Tally, stop: threading.Event, budget: list[int], seed: int) -> None:
    rng = random.Random(seed)
    kinds = [m for m in mix for _ in range(m[1])]
    session = requests.Session()
    while not stop.is_set():
        with tally.lock:
            if budget[0] <= 0:
                return
            budget[0] -= 1
        kind, _, body, expected = rng.choice(kinds)
        start = time.perf_counter()
        try:
            response = session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=60)
            status = response.status_code
            response.json()  # every answer is JSON
        except (requests.ConnectionError, requests.Timeout, ValueError):
            status = None
            session = requests.Session()
        tally.add(kind, status, time.perf_counter() - start, expected)


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` and its descendants: `serve` is a supervisor with one worker process per CPU."""
    status = Path(f"/proc/{pid}/status").read_text()
    own = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1)) / 1024
    children = (Path(f"/proc/{pid}/task/{pid}/children").read_text()).split()
    return own + sum(rss_mb(int(child)) for child in children)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(duration: float, clients: int, server_threads: int, max_requests: int) -> dict:
    cat = jpeg(photos.chelsea(), 640)
    coffee = jpeg(photos.coffee(), 640)
    host = ImageHost({"/cat.jpg": cat, "/coffee.jpg": coffee})
    port = free_port()
    # The test-only switch lets `url` requests reach the image host on 127.0.0.1; never set in deployments.
    env = {**os.environ, "IMAGE_SIMILARITY_ALLOW_LOOPBACK_URLS": "1", "POWERTOOLS_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [sys.executable, "-m", "image_similarity.adapters.cli", "serve", "--port", str(port),
         "--threads", str(server_threads)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(f"{base}/ping", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.1)
    else:
        server.kill()
        raise SystemExit("the server did not start")
    mix = request_mix(host, cat, coffee)
    # Warm-up: the first requests allocate the model's buffers; the soak's RSS starts after them.
    for _kind, _, body, _ in mix:
        requests.post(base + API_PATH, data=body, timeout=60)
    rss = [(0.0, rss_mb(server.pid))]
    tally, stop, budget = Tally(), threading.Event(), [max_requests]
    threads = [threading.Thread(target=client, args=(base + API_PATH, mix, tally, stop, budget, i)) for i in
               range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    while time.monotonic() - start < duration and any(t.is_alive() for t in threads):
        time.sleep(1.0)
        rss.append((time.monotonic() - start, rss_mb(server.pid)))
    stop.set()
    for t in threads:
        t.join(120)
    elapsed = time.monotonic() - start
    server.send_signal(signal.SIGTERM)
    try:
        exit_code = server.wait(timeout=40)
    except subprocess.TimeoutExpired:
        server.kill()
        exit_code = "killed after 40 s"
    host.server.shutdown()
    all_latencies = [s for values in tally.latencies.values() for s in values]
    return {
        "duration_s": elapsed, "clients": clients, "server_threads": server_threads,
        "requests": len(all_latencies) + sum(tally.dropped.values()),
        "rps": len(all_latencies) / elapsed,
        "p50_ms": 1000 * float(np.percentile(all_latencies, 50)),
        "p95_ms": 1000 * float(np.percentile(all_latencies, 95)),
        "p99_ms": 1000 * float(np.percentile(all_latencies, 99)),
        "statuses": dict(sorted(tally.statuses.items())),
        "errors_5xx": sum(n for s, n in tally.statuses.items() if s >= 500),
        "unexpected": {f"{k} -> {s}": n for (k, s), n in tally.unexpected.items()},
        "dropped": sum(tally.dropped.values()),
        "rss_start_mb": rss[0][1], "rss_end_mb": rss[-1][1], "rss_max_mb": max(r for _, r in rss),
        # Growth that levels off (allocator arenas filling up) is stable; a leak keeps climbing to the end.
        "rss_by_quarter_mb": [next(r for t, r in rss if t >= q * elapsed / 4) for q in range(1, 4)] + [rss[-1][1]],
        "exit_code": exit_code,
        "by_kind": {
            kind: {"n": len(values), "p50_ms": 1000 * float(np.percentile(values, 50)),
                   "p99_ms": 1000 * float(np.percentile(values, 99))}
            for kind, values in sorted(tally.latencies.items())
        },
    }


def markdown(r: dict) -> str:
    lines = [
        "# Load and soak test of the local server",
        "",
        (
            "`make load` (bench/load.py): the local server (`image-similarity serve`: waitress, one worker process "
            f"per CPU, {r['server_threads']} threads each) on 127.0.0.1, driven by {r['clients']} client threads with "
            "keep-alive, a fixed mix of valid and invalid requests, for a bounded time; the server's RSS (supervisor "
            "and workers together) sampled every second; "
            "SIGTERM at the end. One 2-core machine runs both the clients and the server."
        ),
        "",
        (
            "| requests | duration | rps | p50 | p95 | p99 | 5xx | dropped | unexpected statuses | RSS start | RSS end "
            "| RSS max | exit on SIGTERM |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        (
            f"| {r['requests']} | {r['duration_s']:.0f} s | {r['rps']:.1f} | {r['p50_ms']:.0f} ms "
            f"| {r['p95_ms']:.0f} ms | {r['p99_ms']:.0f} ms | {r['errors_5xx']} | {r['dropped']} "
            f"| {sum(r['unexpected'].values())} | {r['rss_start_mb']:.0f} MB | {r['rss_end_mb']:.0f} MB "
            f"| {r['rss_max_mb']:.0f} MB | {r['exit_code']} |"
        ),
        "",
        (
            f"Statuses: {', '.join(f'{s}: {n}' for s, n in r['statuses'].items())}. Server RSS at the end of each "
            f"quarter of the run: {', '.join(f'{m:.0f}' for m in r['rss_by_quarter_mb'])} MB."
        ),
        "",
        "| request kind | n | p50 | p99 |",
        "|---|---|---|---|",
        *(f"| {k} | {v['n']} | {v['p50_ms']:.0f} ms | {v['p99_ms']:.0f} ms |" for k, v in r["by_kind"].items()),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of load (default 180)")
    parser.add_argument("--clients", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--server-threads", type=int, default=4, help="server threads (default 4, as `serve`)")
    parser.add_argument("--max-requests", type=int, default=200_000, help="stop after this many requests")
    parser.add_argument("--markdown", help="write the summary to this file")
    args = parser.parse_args()
    result = run(args.duration, args.clients, args.server_threads, args.max_requests)
    print(json.dumps(result, indent=2))
    if args.markdown:
        Path(args.markdown).write_text(markdown(result))
    healthy = (result["errors_5xx"] == 0 and result["dropped"] == 0 and not result["unexpected"]
               and result["exit_code"] == 0)
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
