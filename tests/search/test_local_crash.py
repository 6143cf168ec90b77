"""Crash safety: `image-similarity serve --workers 2` is killed (SIGKILL, no shutdown) while clients are adding
items; every add the server had acknowledged with 200 is in the store afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import requests
from helpers import free_port, wait_for_ping
from image_similarity.search.local_store import LocalStore
from search_helpers import unit_rows


def test_no_acknowledged_add_is_lost_when_the_server_is_killed_mid_write(tmp_path, service):
    port = free_port()
    env = {**os.environ, "IMAGE_SIMILARITY_DATA_DIR": str(tmp_path), "IMAGE_SIMILARITY_THREADS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "image_similarity.adapters.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    acknowledged: list[str] = []
    cut_off: list[int] = []  # clients whose request was in flight when the server died
    rows = unit_rows(3000)
    stop = threading.Event()

    def client(part: int) -> None:
        for batch in range(100):
            start = part * 1000 + batch * 10
            items = [{"id": f"item-{i}", "vector": rows[i].tolist()} for i in range(start, start + 10)]
            try:
                answer = requests.post(f"{base}/collections/crash/items", json={"items": items}, timeout=30)
            except requests.RequestException:
                cut_off.append(part)  # the server is gone: this add was never acknowledged
                return
            if answer.status_code == 200:
                acknowledged.extend(item["id"] for item in items)
            if stop.is_set():
                return

    try:
        wait_for_ping(base, server)
        clients = [threading.Thread(target=client, args=(part,)) for part in range(3)]
        for thread in clients:
            thread.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(server.pid, signal.SIGKILL)  # the parent and both workers, in the middle of the writes
        stop.set()
        for thread in clients:
            thread.join(60)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    assert len(acknowledged) >= 300 and cut_off, "the kill must land while adds are in flight"
    store = LocalStore(tmp_path)
    assert store.describe("crash").count >= len(acknowledged)
    version = service.model_version
    found = {store.search("crash", rows[int(item.split("-")[1])], 1, 0.0, version)[0].id for item in acknowledged}
    assert set(acknowledged) <= found
