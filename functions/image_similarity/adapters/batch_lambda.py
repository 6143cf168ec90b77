"""AWS Lambda entry point of the batch job: one Distributed Map batch in, one Parquet part out.

The event is what a Distributed Map's ItemBatcher sends: `{"Items": [...], "BatchInput": {...}}`. Items come from an
S3 object listing (`Key`, `Etag`, `Size`, ...) or an S3 Inventory manifest (`Bucket`, `Key`, `VersionId`, ...).
Unusable images become rows with an `error`; only a bad event or a fault of ours (model, S3 write) fails the batch,
which Step Functions then retries and counts against the tolerated failure percentage.
Logs carry counts, timings and the part's name (a hash), never S3 keys.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger

from image_similarity.batch.locations import BatchInputError, parts_prefix
from image_similarity.batch.parquet_rows import to_table
from image_similarity.batch.parts import S3Parts, part_name
from image_similarity.batch.worker import Item, ItemReader, Worker
from image_similarity.core.service import default_service
from image_similarity.core.settings import Settings
from image_similarity.sources.s3_fetch import BUCKET_NAME, default_client

logger = Logger(service="image-similarity-batch")
# Step Functions execution names: 1-80 characters; kept to a safe alphabet because the name becomes a key prefix.
EXECUTION_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")


@dataclass(frozen=True)
class BatchEvent:
    items: list[Item]
    output_bucket: str
    output_prefix: str
    execution_name: str

    @property
    def parts_prefix(self) -> str:
        return parts_prefix(self.output_prefix, self.execution_name)


def parse_event(event: dict[str, Any]) -> BatchEvent:
    batch = event.get("BatchInput")
    raw_items = event.get("Items")
    if not isinstance(batch, dict) or not isinstance(raw_items, list):
        raise BatchInputError("the event needs `Items` (a list) and `BatchInput` (an object): set an ItemBatcher")
    input_bucket = batch.get("input_bucket")
    output_bucket = str(batch.get("output_bucket", ""))
    execution = str(batch.get("execution_name", ""))
    if not BUCKET_NAME.match(output_bucket):
        raise BatchInputError("BatchInput.output_bucket is missing or not a valid bucket name")
    if not EXECUTION_NAME.match(execution):
        raise BatchInputError("BatchInput.execution_name is missing or not a Step Functions execution name")
    items = []
    for raw in raw_items:
        if not isinstance(raw, dict) or not isinstance(raw.get("Key"), str):
            raise BatchInputError("every item needs a `Key`: use an S3 listing or inventory item reader")
        bucket = raw.get("Bucket") or input_bucket  # inventory manifests name the bucket per item
        if not isinstance(bucket, str) or not BUCKET_NAME.match(bucket):
            raise BatchInputError("an item has no valid bucket: set BatchInput.input_bucket")
        # The listing reader says `Etag`; S3's own APIs and inventory reports say `ETag`.
        etag = raw.get("Etag", raw.get("ETag"))
        items.append(Item(raw["Key"], bucket, etag=etag, version_id=raw.get("VersionId")))
    return BatchEvent(items, output_bucket, str(batch.get("output_prefix", "")), execution)


@lru_cache(maxsize=1)
def default_worker() -> Worker:
    """Built once per cold start: the service's model session, S3 reads under the service's fetch settings."""
    service = default_service()
    settings = Settings.from_env()
    return Worker(service.embedder, ItemReader(settings.fetch, default_client()), decoders=settings.threads)


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    start = time.perf_counter()
    job = parse_event(event)
    name = part_name(job.items)
    rows = default_worker().embed(job.items)
    embedded = sum(row.error is None for row in rows)
    part = S3Parts(default_client(), job.output_bucket, job.parts_prefix).write(name, to_table(rows)) if rows else None
    logger.info(
        "batch",
        extra={
            "lambda_request_id": getattr(context, "aws_request_id", None),
            "execution_name": job.execution_name,
            "part_name": name,
            "items": len(job.items),
            "embedded": embedded,
            "failed": len(rows) - embedded,
            "duration_ms": round((time.perf_counter() - start) * 1000, 1),
        },
    )
    return {"embedded": embedded, "failed": len(rows) - embedded, "part": part}
