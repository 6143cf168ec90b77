"""`image-similarity embed`: images, folders or URLs to vectors (JSON Lines on stdout, or a vectors file)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from image_similarity.adapters.cli import batch
from image_similarity.adapters.cli.common import add_bulk_options, inputs, open_embedding, summary
from image_similarity.album.bulk_embed import default_workers, iter_embeddings
from image_similarity.album.vector_files import FORMATS, check_output, write_vectors


def cmd_embed(args: argparse.Namespace) -> int:
    if batch.wants_batch(args):  # S3 prefixes and S3 output: the batch worker, Parquet parts, resumable
        return batch.cmd_embed_batch(args)
    if args.out not in (None, "-"):
        check_output(Path(args.out))  # before any work: a typo must not cost an hour of embedding
    locations = inputs(args.images)
    if args.out in (None, "-"):
        return _json_lines(args, locations)
    embedding = open_embedding(args)
    run = embedding.run(locations)
    written = write_vectors(Path(args.out), run, embedding.backend.model)
    print(f"{summary(run)}; wrote {', '.join(map(str, written))}", file=sys.stderr)
    return 1 if run.failures else 0


def _json_lines(args: argparse.Namespace, locations: list[str]) -> int:
    """One JSON object a line on stdout, as each batch is done; the cache is used only when --cache names one."""
    embedding = open_embedding(args, persistent=bool(args.cache))
    failed = 0
    for outcome in iter_embeddings(locations, embedding.backend, embedding.read, embedding.cache, args.batch_size,
                                   embedding.workers or default_workers(bool(args.remote))):
        if outcome.vector is None:
            print(f"{outcome.location}: {outcome.error}", file=sys.stderr)
            failed += 1
        else:
            print(json.dumps({"image": outcome.location, "sha256": outcome.key, "result": outcome.vector.tolist()}),
                  flush=True)
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    embed = sub.add_parser("embed", help="embed images: JSON Lines on stdout, or a vectors file with --out",
                           description=__doc__)
    embed.add_argument("images", nargs="+", metavar="IMAGE",
                       help="file, folder (walked recursively), http(s):// or s3:// URL, or - to read names from stdin")
    embed.add_argument("--out", metavar="FILE",
                       help=f"write all vectors to FILE ({' / '.join(FORMATS)}; resumable through the cache), or - "
                            "for JSON Lines on stdout (default: JSON Lines on stdout)")
    add_bulk_options(embed)
    embed.set_defaults(run=cmd_embed)
