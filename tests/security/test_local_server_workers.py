"""`image-similarity serve --workers 2`: worker processes on one listening socket answer the API and waitress's own
errors as JSON, finish their requests in flight on SIGTERM; a worker that dies is replaced, and workers that cannot
start at all make the server exit with an error."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from helpers import b64, free_port, wait_for_ping
from image_similarity.adapters.local_server import API_PATH
from image_similarity.adapters.supervisor import STOP_SIGNALS, _Workers, bind, run_workers
from image_similarity.core.embedder import Embedder, ModelError, ModelInfo
from image_similarity.core.settings import Settings
from test_local_server_limits import SlowImage, exchange


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def supervisor_state(server: subprocess.Popen, log: Path) -> str:
    """What the supervisor was doing, for a failure message: each of its threads' state and kernel wait channel (a
    native library's thread can hold a lock across fork), and the end of its log."""
    tasks = []
    for task in sorted(Path(f"/proc/{server.pid}/task").glob("*")):
        with contextlib.suppress(OSError):
            state = next(line for line in (task / "status").read_text().splitlines() if line.startswith("State"))
            tasks.append(f"{task.name}: {state.split(':', 1)[1].strip()} in {(task / 'wchan').read_text()}")
    return f"supervisor threads {tasks}; log tail:\n{log.read_text(errors='replace')[-2000:]}"


@pytest.fixture
def workers(tmp_path) -> Iterator[tuple[subprocess.Popen, int]]:
    port = free_port()
    env = {**os.environ, "IMAGE_SIMILARITY_ALLOW_LOOPBACK_URLS": "1", "IMAGE_SIMILARITY_THREADS": "1"}
    log = tmp_path / "server.log"  # a file, not a pipe nobody reads: a full pipe would block the logging process
    with log.open("wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "image_similarity.adapters.cli", "serve", "--port", str(port), "--workers", "2",
             "--threads", "2"],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )
    try:
        wait_for_ping(f"http://127.0.0.1:{port}", server)
        deadline = time.monotonic() + 30
        while len(children(server.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        yield server, port
    finally:
        workers = children(server.pid)  # before the parent goes: its orphans would be init's children
        if server.poll() is None:
            server.kill()
        server.wait()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_workers_answer_the_api_and_malformed_http_as_json(workers, cat_jpeg):
    server, port = workers
    assert len(children(server.pid)) == 2
    base = f"http://127.0.0.1:{port}"
    with ThreadPoolExecutor(4) as pool:  # new connections, spread over both workers by whichever accepts first
        answers = list(pool.map(lambda _: requests.post(base + API_PATH, json={"img": b64(cat_jpeg)}, timeout=30),
                                range(8)))
        bad = list(pool.map(lambda _: exchange(("127.0.0.1", port), b"POST /image-similarity HTTP/1.1\r\nBad Header"
                                                                    b"\r\n\r\n"), range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    assert all(len(a.json()["result"]) == 512 for a in answers)
    assert all(status == 400 and body["message"] for status, body in bad)


def test_sigterm_to_the_parent_finishes_requests_in_flight_in_every_worker(workers, cat_jpeg):
    server, port = workers
    SlowImage.image = cat_jpeg
    images = ThreadingHTTPServer(("127.0.0.1", 0), SlowImage)
    threading.Thread(target=images.serve_forever, daemon=True).start()
    base, url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{images.server_address[1]}/cat.jpg"
    pids = children(server.pid)
    try:
        # A worker of 2 threads fetches up to 4 URLs at once (more get a 429): 4 fit even if one worker takes all.
        with ThreadPoolExecutor(4) as pool:
            in_flight = [pool.submit(requests.post, base + API_PATH, json={"url": url}, timeout=30) for _ in range(4)]
            time.sleep(0.8)
            server.send_signal(signal.SIGTERM)
            answers = [f.result() for f in in_flight]
        assert [a.status_code for a in answers] == [200] * 4
        assert server.wait(timeout=20) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{base}/ping", timeout=2)
    finally:
        images.shutdown()
        images.server_close()


def test_a_worker_killed_as_the_oom_killer_would_is_replaced(workers, cat_jpeg, tmp_path):
    server, port = workers
    first, second = children(server.pid)
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (len(children(server.pid)) < 2 or first in children(server.pid)):
        time.sleep(0.1)
    assert first not in children(server.pid) and len(children(server.pid)) == 2, supervisor_state(
        server, tmp_path / "server.log")
    assert second in children(server.pid)
    base = f"http://127.0.0.1:{port}"
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: requests.post(base + API_PATH, json={"img": b64(cat_jpeg)}, timeout=30),
                                range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    assert server.poll() is None


def test_workers_that_cannot_start_make_the_supervisor_give_up():
    sock = bind("127.0.0.1", 0)
    started = time.monotonic()
    assert run_workers(lambda: sys.exit(3), 2, sock) == 1  # as a worker whose model fails its sha256 check does
    assert time.monotonic() - started < 20
    assert sock.fileno() == -1



def _blocked() -> set[int]:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))


def test_stop_signals_are_blocked_across_the_fork_and_unblocked_in_the_worker(monkeypatch):
    """A SIGTERM that reached a just-forked worker before it reset its handlers ran the supervisor's handler in the
    child, whose exception unwound the child into the supervisor's loop (in the suite: a second pytest). Blocked
    across the fork, it waits; the worker unblocks it once SIG_DFL is in place, the supervisor right after start."""
    workers = _Workers(lambda: sys.exit(0 if not _blocked() & set(STOP_SIGNALS) else 5), 1)
    during_start = []
    real_process = workers.context.Process

    def recording_process(*args, **kwargs):
        process = real_process(*args, **kwargs)
        real_start = process.start
        process.start = lambda: (during_start.append(_blocked()), real_start())[-1]
        return process

    monkeypatch.setattr(workers.context, "Process", recording_process)
    workers.start(0)
    workers.processes[0].join(timeout=20)
    assert set(STOP_SIGNALS) <= during_start[0]
    assert not _blocked() & set(STOP_SIGNALS)
    assert workers.processes[0].exitcode == 0  # the worker's work ran with both signals unblocked

def test_the_service_refuses_a_model_whose_sha256_does_not_match():
    info = ModelInfo.load()
    with pytest.raises(ModelError, match="sha256"):
        Embedder(dataclasses.replace(info, sha256="0" * 64))


def test_workers_share_the_cpus_for_the_model_unless_told_otherwise():
    lambda_env = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3538"}  # 2 vCPUs
    assert Settings.from_env(lambda_env).threads == 2
    assert Settings.from_env(lambda_env, processes=2).threads == 1
    assert Settings.from_env(lambda_env, processes=3).threads == 1
    assert Settings.from_env({**lambda_env, "IMAGE_SIMILARITY_THREADS": "2"}, processes=2).threads == 2


def test_workers_end_when_the_supervisor_is_killed_outright(workers):
    """SIGKILL (or the OOM killer) gives the supervisor no chance to stop its workers: they must not go on serving."""
    server, port = workers
    pids = children(server.pid)
    assert len(pids) == 2
    server.kill()
    server.wait()
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() and "(Z)" not in _state(pid) for pid in pids):
        assert time.monotonic() < deadline, "workers outlived their supervisor"
        time.sleep(0.1)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/ping", timeout=5)


def _state(pid: int) -> str:
    try:
        return "(" + Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] + ")"
    except OSError:
        return "(Z)"
