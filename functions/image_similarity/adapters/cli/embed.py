"""`image-similarity embed`: images, folders or URLs to vectors (JSON lines on stdout, or a vectors file)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from image_similarity.adapters.cli import batch
from image_similarity.adapters.cli.common import (
    add_bulk_options,
    embed_locations,
    open_backend,
    open_cache,
    summary,
)
from image_similarity.album.bulk_embed import default_workers, iter_embeddings
from image_similarity.album.image_files import find_images
from image_similarity.album.vector_files import FORMATS, check_output, write_vectors


def cmd_embed(args: argparse.Namespace) -> int:
    if batch.wants_batch(args):  # S3 prefixes and S3 output: the batch worker, Parquet parts, resumable
        return batch.cmd_embed_batch(args)
    locations = find_images(args.images)
    if args.out is None:  # JSON lines on stdout, as they come
        backend, read = open_backend(args)
        cache = open_cache(args, backend, persistent=bool(args.cache))
        workers = args.workers or default_workers(bool(args.remote))
        failed = 0
        for outcome in iter_embeddings(locations, backend, read, cache, args.batch_size, workers):
            if outcome.vector is None:
                print(f"{outcome.location}: {outcome.error}", file=sys.stderr)
                failed += 1
            else:
                print(json.dumps({"image": outcome.location, "result": outcome.vector.tolist()}), flush=True)
        return 1 if failed else 0
    out = Path(args.out)
    check_output(out)
    run, backend, _ = embed_locations(args, locations)
    written = write_vectors(out, run, backend.model)
    print(f"{summary(run)}; wrote {', '.join(map(str, written))}", file=sys.stderr)
    return 1 if run.failures else 0



def register(sub: argparse._SubParsersAction) -> None:
    embed = sub.add_parser("embed", help="embed images: JSON lines on stdout, or a vectors file with --out")
    embed.add_argument("images", nargs="+", metavar="IMAGE", help="file, folder, or http(s):// / s3:// URL")
    embed.add_argument("--out", metavar="FILE", help=f"write all vectors to FILE ({' / '.join(FORMATS)}); resumable")
    add_bulk_options(embed)
    embed.set_defaults(run=cmd_embed)
