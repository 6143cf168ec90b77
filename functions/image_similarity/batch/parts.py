"""Where a run's Parquet parts go: a local folder or an S3 prefix, one part per batch. A part's name is a hash of
its inputs, so a retried batch (a Lambda retry, a resumed local run) overwrites its own part instead of adding one."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from image_similarity.batch.parquet_rows import write_table
from image_similarity.batch.worker import Item

SUFFIX = ".parquet"


def batch_id(items: Iterable[Item]) -> str:
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.bucket or ''}\0{item.key}\0{item.etag or ''}\0{item.version_id or ''}\n".encode())
    return digest.hexdigest()[:24]


def list_objects(client, bucket: str, prefix: str) -> Iterator[Item]:
    """Every object under the prefix, as S3 lists them (key order), without folder markers."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            item = Item(obj["Key"], bucket, etag=obj.get("ETag"))
            if not item.is_folder_marker:
                yield item


class LocalParts:
    """Parts in a folder; each written under a temporary name and renamed, so a killed run leaves no torn part."""

    def __init__(self, folder: Path):
        self.folder = folder

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir() if p.suffix == SUFFIX)

    def read(self, name: str) -> pa.Table:
        return pq.read_table(self.folder / name)

    def write(self, name: str, table: pa.Table) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / name
        partial = path.with_name(f".{name}.partial")
        write_table(table, str(partial))
        os.replace(partial, path)
        return str(path)


class S3Parts:
    """Parts under `s3://bucket/prefix` (a PUT is atomic: a part is either whole or absent)."""

    def __init__(self, client, bucket: str, prefix: str):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix if prefix.endswith("/") or not prefix else prefix + "/"

    def url(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{name}"

    def names(self) -> list[str]:
        found = (item.key[len(self.prefix) :] for item in list_objects(self.client, self.bucket, self.prefix))
        return sorted(name for name in found if name.endswith(SUFFIX) and "/" not in name)

    def read(self, name: str) -> pa.Table:
        body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read()
        return pq.read_table(io.BytesIO(body))

    def write(self, name: str, table: pa.Table) -> str:
        buffer = io.BytesIO()
        write_table(table, buffer)
        self.client.put_object(
            Bucket=self.bucket,
            Key=self.prefix + name,
            Body=buffer.getvalue(),
            ContentType="application/vnd.apache.parquet",
        )
        return self.url(name)


def part_name(items: list[Item]) -> str:
    return batch_id(items) + SUFFIX
