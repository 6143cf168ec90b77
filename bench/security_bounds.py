"""The local server's resource bounds, measured on 127.0.0.1 only: the figures docs/SECURITY.md states.

    python bench/security_bounds.py

Prints, one JSON line each:
- memory per request: the peak RSS growth of one request for the costliest images inside the limits, each measured
  alone in a subprocess (tests/security/bombs.py);
- memory per worker: one worker of 4 threads answering rounds of 16 concurrent worst-case requests (its RSS before,
  its peak, and after);
- connections held: 1,000 idle and 200 slowloris connections, plus 100 uploads stopped one byte short of 6 MB, held
  against that worker: its RSS growth, and /ping and an inline-image request's latency meanwhile;
- fetch capacity: 16 concurrent requests for a URL whose origin drips a byte every 50 ms: their statuses and
  duration, and /ping and an inline-image request's latency meanwhile.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from base64 import b64encode
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from skimage import data as photos

ROOT = Path(__file__).resolve().parents[1]
BOMBS_PATH = ROOT / "tests" / "security" / "bombs.py"
API_PATH = "/image-similarity"
WORST_CASES = ("palette_4096_px_transparent", "palette_4096_px_transparent_rotated_with_text", "rgba_4096_px",
               "la_4096_px", "grey_16_bit_4096_px", "png_4096_px_zeros_within_limits")


def load_bombs():
    spec = importlib.util.spec_from_file_location("bombs", BOMBS_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def status_mb(pid: int, field: str) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE).group(1)) / 1024


def emit(figure: str, **values) -> None:
    print(json.dumps({"figure": figure, **{k: round(v, 1) if isinstance(v, float) else v for k, v in values.items()}}),
          flush=True)


def per_request(bombs) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for name in WORST_CASES:
            (Path(folder) / name).write_bytes(bombs.BOMBS[name]())
        run = subprocess.run([sys.executable, str(BOMBS_PATH), folder], capture_output=True, text=True, check=True)
    for line in run.stdout.splitlines():
        result = json.loads(line)
        emit("memory per request", image=result["name"], status=result["status"],
             peak_growth_mb=result["peak_growth_mb"], seconds=result["seconds"])


def start_server(port: int) -> subprocess.Popen:
    env = {**os.environ, "IMAGE_SIMILARITY_ALLOW_LOOPBACK_URLS": "1", "POWERTOOLS_LOG_LEVEL": "ERROR"}
    server = subprocess.Popen([sys.executable, "-m", "image_similarity.adapters.cli", "serve", "--port", str(port),
                               "--workers", "1", "--threads", "4"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return server
        except requests.ConnectionError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not start")


def timed(call) -> tuple[float, int]:
    start = time.monotonic()
    status = call()
    return (time.monotonic() - start) * 1000, status


def per_worker(base: str, pid: int, bombs) -> None:
    bodies = [bombs.BOMBS[name]() for name in WORST_CASES]
    before = status_mb(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    with ThreadPoolExecutor(16) as pool:
        for _ in range(4):
            statuses = list(pool.map(lambda i: requests.post(base + API_PATH, data=bodies[i % len(bodies)],
                                                             timeout=120).status_code, range(16)))
    emit("memory per worker", requests=64, concurrent=16, statuses=sorted(set(statuses)), rss_before_mb=before,
         rss_peak_mb=status_mb(pid, "VmHWM"), rss_after_mb=status_mb(pid, "VmRSS"))


def held_connections(base: str, port: int, pid: int, inline: bytes) -> None:
    before = status_mb(pid, "VmRSS")
    head = f"POST {API_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
    upload = head + b"Content-Length: 6291456\r\n\r\n" + b"A" * (6291456 - 1)
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(1000)]
    for _ in range(200):
        held.append(socket.create_connection(("127.0.0.1", port)))
        held[-1].sendall(head)
    for _ in range(100):
        held.append(socket.create_connection(("127.0.0.1", port)))
        held[-1].sendall(upload)
    time.sleep(3)
    for sock in held[1000:1200]:
        sock.sendall(b"X-a: b\r\n")
    pings = [timed(lambda: requests.get(base + "/ping", timeout=10).status_code)[0] for _ in range(10)]
    inline_ms, inline_status = timed(lambda: requests.post(base + API_PATH, data=inline, timeout=30).status_code)
    emit("connections held", idle=1000, slowloris=200, uploads_one_byte_short_of_6_mb=100,
         rss_growth_mb=status_mb(pid, "VmRSS") - before, ping_ms_max=max(pings), ping_ms_median=sorted(pings)[5],
         inline_request_ms=inline_ms, inline_status=inline_status)
    for sock in held:
        sock.close()


def dripping_origin() -> tuple[socket.socket, str]:
    listener = socket.create_server(("127.0.0.1", 0))

    def answer(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                while True:
                    conn.sendall(b"x")
                    time.sleep(0.05)
            except OSError:
                pass

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return listener, f"http://127.0.0.1:{listener.getsockname()[1]}/slow.jpg"


def fetch_capacity(base: str, inline: bytes) -> None:
    listener, url = dripping_origin()
    body = json.dumps({"url": url}).encode()
    start = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        slow = [pool.submit(lambda: requests.post(base + API_PATH, data=body, timeout=60).status_code)
                for _ in range(16)]
        time.sleep(1.0)
        ping_ms, _ = timed(lambda: requests.get(base + "/ping", timeout=30).status_code)
        inline_ms, inline_status = timed(lambda: requests.post(base + API_PATH, data=inline, timeout=30).status_code)
        statuses = [f.result() for f in slow]
    emit("fetch capacity", slow_url_requests=16, statuses={s: statuses.count(s) for s in sorted(set(statuses))},
         all_answered_s=time.monotonic() - start, ping_ms=ping_ms, inline_request_ms=inline_ms,
         inline_status=inline_status)
    listener.close()


def main() -> int:
    bombs = load_bombs()
    per_request(bombs)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = start_server(port)
    base = f"http://127.0.0.1:{port}"
    import io

    from PIL import Image
    out = io.BytesIO()
    Image.fromarray(photos.chelsea()).save(out, "JPEG", quality=90)
    inline = json.dumps({"img": b64encode(out.getvalue()).decode()}).encode()
    try:
        requests.post(base + API_PATH, data=inline, timeout=60)  # warm the model
        per_worker(base, server.pid, bombs)
        held_connections(base, port, server.pid, inline)
        fetch_capacity(base, inline)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
