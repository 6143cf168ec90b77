"""The batch worker: one row per input in order, errors as rows, embeddings equal to the API's, bounded read-ahead."""

from __future__ import annotations

import io
import json
import threading
import time

import numpy as np
import pytest
from batch.conftest import UNUSABLE
from helpers import b64, encode
from image_similarity.batch.worker import BATCH_MAX_IMAGE_SIDE, Item, ItemReader, Worker
from image_similarity.core.errors import RequestError
from PIL import Image


def memory_reader(objects: dict[str, bytes]):
    def read(item: Item) -> bytes:
        if item.key not in objects:
            raise RequestError(422, f"{item.key} does not exist")
        return objects[item.key]

    return read


def api_embedding(service, data: bytes) -> np.ndarray:
    response = service.handle(json.dumps({"img": b64(data)}))
    assert response.status == 200
    return np.array(response.body["result"], np.float32)


def test_rows_follow_the_inputs_and_match_the_single_image_api(service, catalogue):
    items = [Item(key, "catalogue", etag=f'"{i}"') for i, key in enumerate(catalogue)]
    rows = Worker(service.embedder, memory_reader(catalogue), model_batch=3, readers=4).embed(items)
    assert [row.item for row in rows] == items
    for row in rows:
        assert row.model_version == service.model_version
        if row.item.key in UNUSABLE:
            assert row.embedding is None and row.error and row.width is None
            continue
        assert row.error is None and row.bytes == len(catalogue[row.item.key])
        width, height = Image.open(io.BytesIO(catalogue[row.item.key])).size
        assert (row.width, row.height) == (width, height)
        assert row.embedding.dtype == np.float32 and row.embedding.shape == (512,)
        np.testing.assert_allclose(row.embedding, api_embedding(service, catalogue[row.item.key]), atol=1e-5)


def test_a_missing_object_is_an_error_row_not_a_failed_batch(service, catalogue):
    rows = Worker(service.embedder, memory_reader(catalogue)).embed(
        [Item("photos/chelsea.jpg", "b"), Item("photos/gone.jpg", "b")]
    )
    assert rows[0].error is None and rows[1].error == "photos/gone.jpg does not exist"


def test_folder_markers_are_not_rows(service, catalogue):
    rows = Worker(service.embedder, memory_reader(catalogue)).embed(
        [Item("photos/", "b"), Item("photos/coffee.jpg", "b")]
    )
    assert [row.item.key for row in rows] == ["photos/coffee.jpg"]


def test_local_files_are_read_from_disk(service, catalogue, tmp_path):
    path = tmp_path / "coffee.jpg"
    path.write_bytes(catalogue["photos/coffee.jpg"])
    good, missing = Worker(service.embedder, ItemReader()).embed([Item(str(path)), Item(str(tmp_path / "no.jpg"))])
    np.testing.assert_allclose(good.embedding, api_embedding(service, path.read_bytes()), atol=1e-5)
    assert missing.embedding is None and "cannot read" in missing.error


def test_camera_size_images_are_embedded_beyond_the_api_limit(service):
    wide = encode(Image.new("RGB", (5000, 300), (40, 90, 200)), "JPEG")
    (row,) = Worker(service.embedder, memory_reader({"wide.jpg": wide})).embed([Item("wide.jpg")])
    assert row.error is None and row.width == 5000  # over the API's 4,096 px
    too_big = encode(Image.new("L", (BATCH_MAX_IMAGE_SIDE + 1, 8)), "PNG")
    (row,) = Worker(service.embedder, memory_reader({"big.png": too_big})).embed([Item("big.png")])
    assert row.embedding is None and f"at most {BATCH_MAX_IMAGE_SIDE} px" in row.error


@pytest.mark.parametrize(("batch", "readers"), [(4, 3), (1, 3)])
def test_reads_run_in_parallel_but_stay_a_bounded_window_ahead_of_the_model(service, catalogue, batch, readers):
    """Memory is bounded: while the caller holds batch k, at most max(batch, readers) further reads have started;
    and with a batch of one, several reads still overlap."""
    keys = [k for k in catalogue if k not in UNUSABLE]
    objects = {f"{i}-{k}": catalogue[k] for i in range(5) for k in keys}
    started: list[str] = []
    in_flight, peak = [0], [0]
    lock = threading.Lock()

    def slow_read(item: Item) -> bytes:
        with lock:
            started.append(item.key)
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.1)  # a network round trip
        with lock:
            in_flight[0] -= 1
        return objects[item.key]

    worker = Worker(service.embedder, slow_read, model_batch=batch, readers=readers)
    rows = worker.iter_rows(Item(key) for key in objects)
    for received in range(1, len(objects) + 1):
        next(rows)
        batches_handed_out = -(-received // batch)
        assert len(started) <= batches_handed_out * batch + max(batch, readers)
    assert peak[0] == readers  # every reader thread was busy at once


def test_worker_settings_are_checked(service):
    with pytest.raises(ValueError, match="at least 1"):
        Worker(service.embedder, ItemReader(), model_batch=0)


def test_at_most_decoders_images_are_decoded_at_once(service, catalogue, monkeypatch):
    """Decoding is where a large PNG takes hundreds of MB: reader threads wait for a decoder slot."""
    from image_similarity.batch import worker as worker_module

    real = worker_module.to_model_input
    busy, peak = [0], [0]
    lock = threading.Lock()

    def tracked(*args, **kwargs):
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        time.sleep(0.05)
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                busy[0] -= 1

    monkeypatch.setattr(worker_module, "to_model_input", tracked)
    keys = [k for k in catalogue if k not in UNUSABLE]
    rows = Worker(service.embedder, memory_reader(catalogue), readers=6, decoders=2).embed([Item(k) for k in keys])
    assert all(row.error is None for row in rows) and peak[0] == 2
