"""Worker rows <-> Parquet. `embedding` is a fixed-size list of float32 (null when the image could not be used):
pandas and DuckDB read it as arrays of 512 floats, Athena as `array<float>`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from image_similarity.batch.worker import Row

EMBEDDING_DIM = 512  # the API contract: an embedding is 512 floats
SCHEMA = pa.schema(
    [
        pa.field("bucket", pa.string()),  # null for local files
        pa.field("key", pa.string(), nullable=False),  # the S3 object key, or the local path
        pa.field("etag", pa.string()),
        pa.field("version_id", pa.string()),
        pa.field("bytes", pa.int64()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32(), EMBEDDING_DIM)),
        pa.field("error", pa.string()),
    ]
)
IDENTITY_COLUMNS = ["bucket", "key", "etag"]


def to_table(rows: list[Row]) -> pa.Table:
    values = np.zeros((len(rows), EMBEDDING_DIM), np.float32)  # null rows keep zeros under their null bit
    missing = []
    for i, row in enumerate(rows):
        missing.append(row.embedding is None)
        if row.embedding is not None:
            values[i] = row.embedding
    embedding = pa.FixedSizeListArray.from_arrays(
        pa.array(values.reshape(-1)), EMBEDDING_DIM, mask=pa.array(missing, pa.bool_())
    )
    columns = {
        "bucket": [r.item.bucket for r in rows],
        "key": [r.item.key for r in rows],
        "etag": [r.item.etag for r in rows],
        "version_id": [r.item.version_id for r in rows],
        "bytes": [r.bytes for r in rows],
        "width": [r.width for r in rows],
        "height": [r.height for r in rows],
        "model_version": [r.model_version for r in rows],
        "embedding": embedding,
        "error": [r.error for r in rows],
    }
    return pa.table({name: columns[name] for name in SCHEMA.names}, schema=SCHEMA)


def write_table(table: pa.Table, sink: str | BinaryIO) -> None:
    pq.write_table(table, sink, compression="zstd")


def identities(tables: Iterable[pa.Table]) -> set[tuple[str | None, str, str | None]]:
    """(bucket, key, etag) of every row already written: what a resumed run skips."""
    done: set[tuple[str | None, str, str | None]] = set()
    for table in tables:
        columns = table.select(IDENTITY_COLUMNS).to_pydict()
        done.update(zip(columns["bucket"], columns["key"], columns["etag"], strict=True))
    return done
