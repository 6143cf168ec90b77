"""The collection-store contract (search/store.py), run against every store in conftest.STORES."""

from __future__ import annotations

import numpy as np
import pytest
from image_similarity.core.errors import RequestError
from search_helpers import unit_rows

V1 = "model-v1"


def add(store, name, count, seed=0, start=0, version=V1):
    rows = unit_rows(count, seed)
    ids = [f"item-{start + i}" for i in range(count)]
    assert store.upsert(name, ids, rows, [{"n": start + i} for i in range(count)], version) == count
    return rows


def test_first_add_creates_the_collection_with_its_count_and_model_version(store):
    add(store, "photos", 5)
    info = store.describe("photos")
    assert (info.name, info.count, info.model_version) == ("photos", 5, V1)


def test_search_finds_an_item_by_its_own_vector_first_with_similarity_one(store):
    rows = add(store, "photos", 50)
    matches = store.search("photos", rows[17], 5, 0.0, V1)
    assert matches[0].id == "item-17" and matches[0].metadata == {"n": 17}
    assert matches[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert len(matches) == 5


def test_matches_are_best_first_on_the_api_scale(store):
    rows = add(store, "photos", 40)
    query = unit_rows(1, seed=9)[0]
    matches = store.search("photos", query, 10, 0.0, V1)
    expected = np.sort(0.5 + 0.5 * (rows @ query))[::-1][:10]
    assert [m.similarity for m in matches] == pytest.approx(expected.tolist(), abs=1e-5)


def test_min_similarity_leaves_out_weaker_matches(store):
    rows = add(store, "photos", 30)
    near = rows[3] + 0.05 * unit_rows(1, seed=5)[0]
    matches = store.search("photos", near / np.linalg.norm(near), 10, 0.9, V1)
    assert [m.id for m in matches] == ["item-3"]


def test_k_larger_than_the_collection_returns_every_item(store):
    add(store, "photos", 3)
    assert len(store.search("photos", unit_rows(1, seed=4)[0], 100, 0.0, V1)) == 3


def test_adding_an_existing_id_replaces_its_vector_and_metadata(store):
    rows = add(store, "photos", 10)
    store.upsert("photos", ["item-2"], rows[7:8], [{"replaced": True}], V1)
    assert store.describe("photos").count == 10
    matches = store.search("photos", rows[7], 2, 0.0, V1)
    assert {m.id for m in matches} == {"item-2", "item-7"}
    assert next(m for m in matches if m.id == "item-2").metadata == {"replaced": True}
    assert store.search("photos", rows[2], 1, 0.0, V1)[0].similarity < 0.99


def test_an_id_repeated_in_one_request_is_written_once_the_last_one_winning(store):
    rows = unit_rows(2)
    assert store.upsert("photos", ["a", "a"], rows, [{"v": 0}, {"v": 1}], V1) == 1
    assert store.describe("photos").count == 1
    assert store.search("photos", rows[1], 1, 0.0, V1)[0].metadata == {"v": 1}


def test_deleted_item_is_no_longer_found_or_counted(store):
    rows = add(store, "photos", 10)
    store.search("photos", rows[0], 1, 0.0, V1)  # the index exists before the delete
    store.delete_item("photos", "item-4")
    assert store.describe("photos").count == 9
    assert "item-4" not in [m.id for m in store.search("photos", rows[4], 10, 0.0, V1)]


def test_deleted_collection_is_gone_and_its_name_free_for_another_model(store):
    add(store, "photos", 5)
    store.delete_collection("photos")
    with pytest.raises(RequestError) as gone:
        store.describe("photos")
    assert gone.value.status == 404
    add(store, "photos", 2, version="model-v2")
    assert store.describe("photos").model_version == "model-v2"
    assert store.describe("photos").count == 2


@pytest.mark.parametrize("operation", ["describe", "search", "delete_item", "delete_collection"])
def test_unknown_collection_is_404(store, operation):
    calls = {
        "describe": lambda: store.describe("nothing"),
        "search": lambda: store.search("nothing", unit_rows(1)[0], 3, 0.0, V1),
        "delete_item": lambda: store.delete_item("nothing", "x"),
        "delete_collection": lambda: store.delete_collection("nothing"),
    }
    with pytest.raises(RequestError) as error:
        calls[operation]()
    assert error.value.status == 404 and "nothing" in error.value.message


def test_unknown_item_is_404(store):
    add(store, "photos", 2)
    with pytest.raises(RequestError) as error:
        store.delete_item("photos", "missing")
    assert error.value.status == 404


@pytest.mark.parametrize("operation", ["upsert", "search"])
def test_another_model_version_is_409_saying_how_to_rebuild(store, operation):
    add(store, "photos", 3)
    with pytest.raises(RequestError) as error:
        if operation == "upsert":
            store.upsert("photos", ["x"], unit_rows(1), [{}], "model-v2")
        else:
            store.search("photos", unit_rows(1)[0], 3, 0.0, "model-v2")
    assert error.value.status == 409
    assert V1 in error.value.message and "DELETE /collections/photos" in error.value.message
    assert store.describe("photos").count == 3


def test_collections_are_separate(store):
    rows = add(store, "first", 4)
    add(store, "second", 4, seed=1)
    assert {m.id for m in store.search("second", rows[0], 10, 0.0, V1)} <= {f"item-{i}" for i in range(4)}
    assert store.search("second", rows[0], 1, 0.0, V1)[0].similarity < 0.99
    store.delete_collection("first")
    assert store.describe("second").count == 4
