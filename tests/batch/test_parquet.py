"""The Parquet parts: a fixed-size list of 512 float32 (null for errors), readable by pyarrow, pandas and DuckDB."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from image_similarity.batch.parquet_rows import SCHEMA, identities, to_table, write_table
from image_similarity.batch.parts import LocalParts, batch_id
from image_similarity.batch.worker import Item, Row


def sample_rows() -> list[Row]:
    vector = np.linspace(-1, 1, 512, dtype=np.float32)
    return [
        Row(Item("a/1.jpg", "bkt", etag='"e1"'), "m1", 1234, 640, 480, vector),
        Row(Item("a/2.txt", "bkt", etag='"e2"'), "m1", error="unsupported image format"),
        Row(Item("/home/me/3.png"), "m1", 99, 10, 20, -vector),
    ]


def test_schema_is_a_fixed_size_float32_list(tmp_path):
    path = tmp_path / "part.parquet"
    write_table(to_table(sample_rows()), str(path))
    table = pq.read_table(path)
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 512)
    assert table.schema.equals(SCHEMA)
    assert table.column("embedding").null_count == 1
    assert table.column("key").to_pylist() == ["a/1.jpg", "a/2.txt", "/home/me/3.png"]
    assert table.column("bucket").to_pylist() == ["bkt", "bkt", None]


def test_pandas_and_duckdb_read_the_vectors(tmp_path):
    path = tmp_path / "part.parquet"
    rows = sample_rows()
    write_table(to_table(rows), str(path))
    frame = pd.read_parquet(path)
    np.testing.assert_array_equal(np.stack(frame.loc[frame.error.isna(), "embedding"]), [rows[0].embedding,
                                                                                           rows[2].embedding])
    found = duckdb.execute(
        "SELECT key, len(embedding), list_sum(embedding), error FROM read_parquet(?) ORDER BY key", [str(path)]
    ).fetchall()
    assert [(k, n, e) for k, n, _, e in found] == [
        ("/home/me/3.png", 512, None),
        ("a/1.jpg", 512, None),
        ("a/2.txt", None, "unsupported image format"),
    ]
    assert abs(found[1][2] - float(rows[0].embedding.sum())) < 1e-3


def test_identities_are_bucket_key_and_etag(tmp_path):
    parts = LocalParts(tmp_path / "parts")
    parts.write("p.parquet", to_table(sample_rows()))
    assert identities([parts.read("p.parquet")]) == {("bkt", "a/1.jpg", '"e1"'), ("bkt", "a/2.txt", '"e2"'),
                                                     (None, "/home/me/3.png", None)}
    assert parts.names() == ["p.parquet"] and not list(parts.folder.glob(".*partial"))


def test_batch_ids_depend_on_contents_not_on_run():
    items = [Item("a.jpg", "b", etag='"1"'), Item("b.jpg", "b", etag='"2"')]
    assert batch_id(items) == batch_id(list(items))
    assert batch_id(items) != batch_id([Item("a.jpg", "b", etag='"changed"'), items[1]])
    assert batch_id(items) != batch_id(items[:1])
