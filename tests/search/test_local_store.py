"""The local store beyond the contract: persistence, the saved index, exact and approximate search, concurrency."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import numpy as np
import pytest
from image_similarity.search import local_store
from image_similarity.search.local_store import LocalStore, default_data_dir
from search_helpers import unit_rows

V1 = "model-v1"


def ids(count: int, start: int = 0) -> list[str]:
    return [f"item-{i}" for i in range(start, start + count)]


def test_data_dir_comes_from_the_environment_then_xdg_then_home(tmp_path):
    assert default_data_dir({"IMAGE_SIMILARITY_DATA_DIR": str(tmp_path)}) == tmp_path
    assert default_data_dir({"XDG_DATA_HOME": "/x/data"}) == Path("/x/data/image-similarity")
    assert default_data_dir({"AWS_LAMBDA_FUNCTION_NAME": "f"}) == Path("/tmp/image-similarity")
    assert default_data_dir({}) == Path.home() / ".local" / "share" / "image-similarity"


def test_items_survive_a_restart(tmp_path):
    rows = unit_rows(20)
    LocalStore(tmp_path).upsert("photos", ids(20), rows, [{"n": i} for i in range(20)], V1)
    reopened = LocalStore(tmp_path)
    assert reopened.describe("photos").count == 20
    assert reopened.search("photos", rows[11], 1, 0.0, V1)[0].metadata == {"n": 11}


def test_each_store_sees_the_others_writes_before_it_searches(tmp_path):
    """Two stores on one folder stand for two server workers: each catches up with the database."""
    first, second = LocalStore(tmp_path), LocalStore(tmp_path)
    rows = unit_rows(6)
    first.upsert("photos", ids(3), rows[:3], [{}] * 3, V1)
    assert second.search("photos", rows[0], 1, 0.0, V1)[0].id == "item-0"
    second.upsert("photos", ids(3, 3), rows[3:], [{}] * 3, V1)
    second.delete_item("photos", "item-0")
    second.upsert("photos", ["item-1"], rows[5:6], [{"moved": 1}], V1)
    found = first.search("photos", rows[5], 6, 0.0, V1)
    assert "item-0" not in [m.id for m in found]
    assert {m.id for m in found[:2]} == {"item-1", "item-5"}
    assert first.describe("photos").count == 5


def test_a_recreated_collection_does_not_show_the_old_ones_items(tmp_path):
    first, second = LocalStore(tmp_path), LocalStore(tmp_path)
    rows = unit_rows(4)
    first.upsert("photos", ids(4), rows, [{}] * 4, V1)
    first.search("photos", rows[0], 1, 0.0, V1)
    second.delete_collection("photos")
    second.upsert("photos", ["new"], rows[:1], [{}], V1)
    assert [m.id for m in first.search("photos", rows[0], 4, 0.0, V1)] == ["new"]
    assert len(first._live) == 1  # the deleted collection's index is not kept


@pytest.fixture
def large(tmp_path):
    """3,000 vectors in clusters (neighbours close together, as embeddings are), the graph used from 1,000 on."""
    rng = np.random.default_rng(3)
    centres = unit_rows(60, seed=4)
    rows = centres[rng.integers(0, 60, 3000)] + rng.normal(scale=0.04, size=(3000, 512)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    store = LocalStore(tmp_path, exact_below=1000)
    for start in range(0, 3000, 500):
        store.upsert("big", ids(500, start), rows[start:start + 500], [{}] * 500, V1)
    return store, rows


def test_the_graph_answers_large_collections_with_recall_at_10_of_at_least_095(large):
    store, rows = large
    queries = unit_rows(40, seed=8) * 0.05 + rows[:40]
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    recall = []
    for query in queries:
        exact = {f"item-{i}" for i in np.argsort(-(rows @ query))[:10]}
        recall.append(len(exact & {m.id for m in store.search("big", query, 10, 0.0, V1)}) / 10)
    assert np.mean(recall) >= 0.95


def test_a_large_collection_saves_its_index_and_a_restart_loads_it_instead_of_rebuilding(large, monkeypatch):
    store, rows = large
    store.build("big")
    saved = list((store.folder / "index").glob("*.faiss"))
    assert len(saved) == 1
    store.upsert("big", ["late"], rows[:1], [{"late": True}], V1)  # written after the save: replayed on load
    store.delete_item("big", "item-1")
    added = []
    original = local_store._LiveIndex.add
    monkeypatch.setattr(local_store._LiveIndex, "add", lambda self, keys, vectors: added.append(len(keys))
                        or original(self, keys, vectors))
    reopened = LocalStore(store.folder, exact_below=1000)
    matches = reopened.search("big", rows[0], 2, 0.0, V1)
    assert {m.id for m in matches} == {"item-0", "late"}
    assert added == [1]  # only the item written after the save was indexed again
    assert "item-1" not in {m.id for m in reopened.search("big", rows[1], 5, 0.0, V1)}


def test_a_graph_with_a_quarter_of_it_deleted_is_rebuilt_without_the_dead(large):
    store, rows = large
    store.build("big")
    for i in range(800):
        store.delete_item("big", f"item-{i}")
    store.build("big")
    live = next(iter(store._live.values()))
    assert live.graph and live.index.ntotal == 3000 and len(live.dead) == 800
    store.delete_item("big", "item-900")
    store.build("big")
    live = next(iter(store._live.values()))
    assert live.index.ntotal == 2199 and not live.dead
    assert store.search("big", rows[5], 1, 0.0, V1)[0].id != "item-5"
    assert store.search("big", rows[1500], 1, 0.0, V1)[0].id == "item-1500"


def test_a_torn_saved_index_is_ignored_and_rebuilt_from_the_database(large):
    store, rows = large
    store.build("big")
    (saved,) = (store.folder / "index").glob("*.faiss")
    saved.write_bytes(saved.read_bytes()[:1000])
    reopened = LocalStore(store.folder, exact_below=1000)
    assert reopened.search("big", rows[5], 1, 0.0, V1)[0].id == "item-5"


def test_parallel_adds_and_searches_in_threads_lose_nothing(tmp_path):
    store = LocalStore(tmp_path, exact_below=200)
    rows = unit_rows(800)
    errors: list[BaseException] = []

    def writer(part: int) -> None:
        try:
            for start in range(part * 200, part * 200 + 200, 20):
                store.upsert("photos", ids(20, start), rows[start:start + 20], [{}] * 20, V1)
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            for i in range(60):
                store.search("photos", rows[i], 5, 0.0, V1)
        except BaseException as exc:
            if getattr(exc, "status", None) != 404:  # the collection may not exist yet
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.describe("photos").count == 800
    assert all(store.search("photos", rows[i], 1, 0.0, V1)[0].id == f"item-{i}" for i in range(0, 800, 37))


def _process_writer(folder: str, part: int) -> None:
    store = LocalStore(Path(folder), exact_below=100)
    rows = unit_rows(400)
    for start in range(part * 100, part * 100 + 100, 10):
        store.upsert("shared", ids(10, start), rows[start:start + 10], [{"part": part}] * 10, V1)
        store.search("shared", rows[start], 3, 0.0, V1)


def test_worker_processes_on_one_folder_write_and_search_together(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_process_writer, args=(str(tmp_path), part)) for part in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    store = LocalStore(tmp_path, exact_below=100)
    rows = unit_rows(400)
    assert store.describe("shared").count == 400
    assert all(store.search("shared", rows[i], 1, 0.0, V1)[0].id == f"item-{i}" for i in range(0, 400, 13))
