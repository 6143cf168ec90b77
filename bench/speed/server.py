"""The local HTTP server (`image-similarity serve`, waitress) in its own process(es) under 1, 4 and 16 concurrent
keep-alive clients: requests per second, latency percentiles, errors."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time

from .timing import percentile


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not answer /ping")


def client(port: int, body: bytes, stop: float, latencies: list[float], errors: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    while time.perf_counter() < stop:
        start = time.perf_counter()
        try:
            conn.request("POST", "/image-similarity", body, headers)
            response = conn.getresponse()
            response.read()
            ok = response.status == 200
        except OSError:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            ok = False
        latencies.append((time.perf_counter() - start) * 1000.0)
        if not ok:
            errors.append(1)
    conn.close()


def load(port: int, body: bytes, clients: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors: list[int] = []
    stop = time.perf_counter() + seconds
    threads = [threading.Thread(target=client, args=(port, body, stop, latencies, errors)) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return {
        "clients": clients, "requests": len(latencies), "rps": len(latencies) / elapsed, "errors": len(errors),
        "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95), "p99_ms": percentile(latencies, 99),
    }


def measure(body: bytes, config: tuple[int, int, int | None], clients: tuple[int, ...], seconds: float) -> list[dict]:
    """One fresh server: `config` is (worker processes, waitress threads in each, ORT threads per request or None for
    the service's default)."""
    processes, threads, ort_threads = config
    port = free_port()
    env = dict(os.environ)
    env.pop("IMAGE_SIMILARITY_THREADS", None)
    if ort_threads is not None:
        env["IMAGE_SIMILARITY_THREADS"] = str(ort_threads)
    argv = [sys.executable, "-m", "image_similarity.adapters.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", str(processes), "--threads", str(threads)]
    proc = subprocess.Popen(argv, env={**env, "LOG_LEVEL": "WARNING"}, stdout=subprocess.DEVNULL)
    try:
        wait_ready(port, proc)
        load(port, body, 1, min(seconds, 1.0))  # warm-up
        return [{"processes": processes, "threads": threads, "ort_threads": ort_threads, **load(port, body, n, seconds)}
                for n in clients]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
