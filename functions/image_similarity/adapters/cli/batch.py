"""`image-similarity batch start|status|stop`: a batch embedding run on a deployed stack; and the S3 side of
`image-similarity embed` (an `s3://bucket/prefix/` input, or `--out s3://bucket/prefix/`), run by the batch worker."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from image_similarity.album.vector_files import OutputFormatError
from image_similarity.batch.control import BatchJobs, BatchProgress
from image_similarity.batch.locations import is_s3_url
from image_similarity.core.service import default_service
from image_similarity.core.settings import Settings


def is_s3_prefix(location: str) -> bool:
    """`s3://bucket/` or `s3://bucket/some/prefix/`; `s3://bucket/key.jpg` stays one image, as the API reads it."""
    return is_s3_url(location) and (location.endswith("/") or "/" not in location[len("s3://") :])


def wants_batch(args: argparse.Namespace) -> bool:
    """`embed` hands over to the batch worker for S3 prefixes and for S3 output."""
    return any(is_s3_prefix(i) for i in args.images) or bool(args.out and is_s3_url(args.out))


def s3_client():
    """boto3 finds credentials, region and AWS_ENDPOINT_URL (S3-compatible stores, moto) as it always does."""
    import boto3

    return boto3.client("s3")


def cmd_embed_batch(args: argparse.Namespace) -> int:
    to_stdout = args.out in (None, "-")
    if not (to_stdout or is_s3_url(args.out) or args.out.lower().endswith(".parquet")):
        raise OutputFormatError("embedding an S3 prefix writes JSON Lines on stdout, --out FILE.parquet or "
                                "--out s3://bucket/prefix/")
    if args.remote:
        raise OutputFormatError("S3 prefixes are embedded with the local model: drop --remote, or use `batch start`")
    # Imported here: pyarrow takes a third of a second to import, and the other commands never need it.
    from image_similarity.batch.local_run import ParquetFileOutput, S3PrefixOutput, find_items, pending, run
    from image_similarity.batch.worker import DEFAULT_READERS, ItemReader, Worker

    client = s3_client()
    settings = Settings.from_env()
    worker = Worker(
        default_service().embedder,
        ItemReader(settings.fetch, client),
        model_batch=args.batch_size,
        readers=args.workers or DEFAULT_READERS,
        decoders=settings.threads,
    )
    items = find_items(args.images, client)
    if to_stdout:
        return _json_lines(worker.iter_rows(items))
    output = S3PrefixOutput(args.out, client) if is_s3_url(args.out) else ParquetFileOutput(Path(args.out))
    todo = pending(items, output)
    with tqdm(total=len(items), initial=len(items) - len(todo), unit="img", disable=None, file=sys.stderr) as bar:

        def step(row) -> None:
            if row.error:
                bar.write(f"{row.item.key}: {row.error}", file=sys.stderr)
            bar.update()

        result = run(todo, output, worker, on_row=step)
    print(
        f"{result.embedded} images embedded, {result.failed} failed (see the `error` column), "
        f"{len(items) - len(todo)} already done; wrote {', '.join(result.outputs)}",
        file=sys.stderr,
    )
    return 1 if result.failed else 0


def _json_lines(rows) -> int:
    """As `embed DIR` without --out: one JSON object a line as each batch is done, unusable objects on stderr."""
    failed = 0
    for row in rows:
        where = f"s3://{row.item.bucket}/{row.item.key}" if row.item.bucket else row.item.key
        if row.error:
            print(f"{where}: {row.error}", file=sys.stderr)
            failed += 1
        else:
            print(json.dumps({"image": where, "result": row.embedding.tolist()}), flush=True)
    return 1 if failed else 0


def cmd_start(args: argparse.Namespace) -> int:
    jobs = BatchJobs()
    arn = jobs.start(
        args.stack,
        args.input,
        args.output,
        name=args.name,
        max_concurrency=args.max_concurrency,
        tolerated_failure_percentage=args.tolerated_failure_percentage,
        inventory_manifest=args.inventory_manifest,
    )
    print(arn)
    if args.no_wait:
        return 0
    return _watch(jobs, arn)


def cmd_status(args: argparse.Namespace) -> int:
    jobs = BatchJobs()
    if args.wait:
        return _watch(jobs, args.execution)
    progress = jobs.progress(args.execution)
    print(json.dumps(progress.as_dict()))
    return 0 if progress.status in ("RUNNING", "SUCCEEDED") else 1


def cmd_stop(args: argparse.Namespace) -> int:
    BatchJobs().stop(args.execution)
    print(f"stopping {args.execution}", file=sys.stderr)
    return 0


def _watch(jobs: BatchJobs, arn: str) -> int:
    with tqdm(unit="img", disable=None, file=sys.stderr) as bar:

        def show(progress: BatchProgress) -> None:
            if progress.total and bar.total != progress.total:
                bar.total = progress.total
            bar.n = progress.succeeded + progress.failed
            bar.set_postfix(status=progress.status, failed=progress.failed, refresh=False)
            bar.refresh()

        final = jobs.wait(arn, show)
    print(json.dumps(final.as_dict()))
    return 0 if final.status == "SUCCEEDED" else 1


def register(sub: argparse._SubParsersAction) -> None:
    batch = sub.add_parser("batch", help="embed an S3 prefix on AWS (a stack deployed with BatchEmbedding=yes)")
    commands = batch.add_subparsers(dest="batch_command", required=True, help="start, watch or stop a run")

    start = commands.add_parser("start", help="start a run and show its progress")
    start.add_argument("input", metavar="s3://in/prefix/", help="the images to embed (every object under it)")
    start.add_argument("output", metavar="s3://out/prefix/", help="where the Parquet parts go")
    start.add_argument("--stack", required=True, help="the deployed stack's name")
    start.add_argument("--name", help="the execution name (default: embed-<time>-<random>)")
    start.add_argument("--max-concurrency", type=int, metavar="N",
                       help="batches (Lambda invocations) running at once (default: the stack's)")
    start.add_argument("--tolerated-failure-percentage", type=float, metavar="PERCENT",
                       help="the Distributed Map's tolerated failure percentage (default: the stack's)")
    start.add_argument("--inventory-manifest", metavar="s3://.../manifest.json",
                       help="read the objects from an S3 Inventory report of the input bucket instead of listing")
    start.add_argument("--no-wait", action="store_true", help="print the execution ARN and return")
    start.set_defaults(run=cmd_start)

    status = commands.add_parser("status", help="a run's status and item counts (JSON)")
    status.add_argument("execution", metavar="EXECUTION_ARN", help="the run, as `batch start` printed it")
    status.add_argument("--wait", action="store_true", help="show a progress bar until the run ends")
    status.set_defaults(run=cmd_status)

    stop = commands.add_parser("stop", help="stop a run")
    stop.add_argument("execution", metavar="EXECUTION_ARN", help="the run, as `batch start` printed it")
    stop.set_defaults(run=cmd_stop)

