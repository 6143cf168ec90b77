"""The batch worker run on this machine over S3 prefixes and local files, resumable.

Rows are written a part at a time (PART_ITEMS images), to an S3 prefix (`parts/local/` under it, the layout the AWS
job uses) or to a folder beside a local `.parquet` file that is merged into that file at the end. A rerun reads the
parts (and the merged file) already written and embeds only objects whose (bucket, key, ETag) is not in them yet:
an interrupted run loses at most the part in flight, and a changed object (new ETag) is embedded again.
Rows are only ever added; an error row counts as done (delete its part to retry it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from image_similarity.album.image_files import find_images
from image_similarity.batch.locations import BatchInputError, is_s3_url, parse_s3_prefix, parts_prefix
from image_similarity.batch.parquet_rows import SCHEMA, identities, to_table
from image_similarity.batch.parts import LocalParts, S3Parts, list_objects, part_name
from image_similarity.batch.worker import Item, Row, Worker

PART_ITEMS = 256
LOCAL_RUN_NAME = "local"


@dataclass
class RunResult:
    embedded: int = 0
    failed: int = 0
    outputs: list[str] = field(default_factory=list)


def find_items(inputs: list[str], s3_client) -> list[Item]:
    """Each `s3://bucket/prefix` lists every object whose key starts with the prefix (S3's meaning of a prefix);
    files and folders are found as `image-similarity embed` finds them. Each input is kept once, in order."""
    items: list[Item] = []
    for location in inputs:
        if is_s3_url(location):
            items.extend(list_objects(s3_client, *parse_s3_prefix(location)))
        else:
            items.extend(Item(path) for path in find_images([location]))
    return list({item.identity: item for item in items}.values())


class ParquetFileOutput:
    """`--out vectors.parquet`: parts in `vectors.parquet.parts/` while running, one file at the end."""

    def __init__(self, path: Path):
        self.path = path
        self.parts = LocalParts(path.with_name(path.name + ".parts"))

    def done(self) -> set:
        tables = (self.parts.read(name) for name in self.parts.names())
        existing = [pq.read_table(self.path)] if self.path.exists() else []
        if existing and existing[0].schema.names != SCHEMA.names:
            # e.g. a folder's vectors from `embed DIR --out vectors.parquet`: other columns, nothing to resume from
            raise BatchInputError(f"{self.path} holds other columns than a batch run writes: choose another --out")
        return identities([*existing, *tables])

    def finish(self) -> list[str]:
        """Stream the old file and every part into a new file, then swap it in and drop the parts."""
        if not self.parts.names():
            return [str(self.path)]
        partial = self.path.with_name(f".{self.path.name}.partial")
        sources = ([self.path] if self.path.exists() else []) + [self.parts.folder / n for n in self.parts.names()]
        with pq.ParquetWriter(partial, SCHEMA, compression="zstd") as writer:
            for source in sources:
                for batch in pq.ParquetFile(source).iter_batches():
                    writer.write_batch(batch)
        os.replace(partial, self.path)
        shutil.rmtree(self.parts.folder, ignore_errors=True)
        return [str(self.path)]


class S3PrefixOutput:
    """`--out s3://bucket/prefix/`: parts under `prefix/parts/local/`, as the AWS job writes `parts/<execution>/`."""

    def __init__(self, url: str, s3_client):
        bucket, prefix = parse_s3_prefix(url)
        self.parts = S3Parts(s3_client, bucket, parts_prefix(prefix, LOCAL_RUN_NAME))

    def done(self) -> set:
        return identities(self.parts.read(name) for name in self.parts.names())

    def finish(self) -> list[str]:
        return [self.parts.url("")]


def pending(items: list[Item], output: ParquetFileOutput | S3PrefixOutput) -> list[Item]:
    """The items no earlier run has written a row for."""
    done = output.done()
    return [item for item in items if item.identity not in done]


def run(
    todo: list[Item],
    output: ParquetFileOutput | S3PrefixOutput,
    worker: Worker,
    on_row: Callable[[Row], None] | None = None,
    part_items: int = PART_ITEMS,
) -> RunResult:
    """Embed `todo` a part at a time, then finish the output (merge a local file)."""
    result = RunResult()
    for chunk in _chunks(todo, part_items):
        rows = []
        for row in worker.iter_rows(chunk):
            rows.append(row)
            if row.error is None:
                result.embedded += 1
            else:
                result.failed += 1
            if on_row:
                on_row(row)
        output.parts.write(part_name(chunk), to_table(rows))
    result.outputs = output.finish()
    return result


def _chunks(items: list[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
