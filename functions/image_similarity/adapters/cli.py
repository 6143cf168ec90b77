"""`image-similarity` command line: embed images or folders, compare two images, find duplicates, serve the API.

Exit status: 0 when every image was used, 1 when some were skipped (each is reported on stderr), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from tqdm import tqdm

from ..bulk_embed import (
    DEFAULT_BATCH_SIZE,
    Backend,
    Embedded,
    EmbedRun,
    ImageReader,
    LocalBackend,
    RemoteBackend,
    collect,
    default_workers,
    iter_embeddings,
)
from ..client import ImageSimilarityClient, ImageSimilarityError
from ..duplicate_report import write_report
from ..duplicates import find_groups
from ..errors import RequestError
from ..explorer import AUTHORIZATIONS, ExplorerConfig
from ..image_files import find_images
from ..service import default_service, similarity
from ..settings import DUPLICATE_THRESHOLD, Settings
from ..sources import ImageSource
from ..vector_cache import VectorCache, default_cache_root
from ..vector_files import FORMATS, OutputFormatError, check_output, write_vectors


def open_backend(args: argparse.Namespace) -> tuple[Backend, ImageReader]:
    """The deployed API with --remote, else the model in this process; URLs are read under the API's rules."""
    if args.remote:
        client = ImageSimilarityClient(args.remote, iam=args.iam)
        return RemoteBackend(client), ImageReader(ImageSource(Settings.from_env().fetch))
    service = default_service()
    return LocalBackend(service), ImageReader(service.source)


def open_cache(args: argparse.Namespace, backend: Backend, persistent: bool) -> VectorCache:
    folder = None if args.no_cache or not persistent else Path(args.cache) if args.cache else default_cache_root()
    return VectorCache(folder, backend.model, backend.dim)


def embed_locations(args: argparse.Namespace, locations: list[str]) -> tuple[EmbedRun, Backend, ImageReader]:
    """Embed with a progress bar on stderr (shown on terminals only); report each skipped image as it happens."""
    backend, read = open_backend(args)
    cache = open_cache(args, backend, persistent=True)
    workers = args.workers or default_workers(bool(args.remote))
    outcomes = iter_embeddings(locations, backend, read, cache, args.batch_size, workers)
    with tqdm(total=len(locations), unit="img", disable=None, file=sys.stderr) as bar:

        def step(outcome: Embedded) -> None:
            if outcome.error:
                bar.write(f"{outcome.location}: {outcome.error}", file=sys.stderr)
            bar.update()

        run = collect(outcomes, backend.dim, step)
    return run, backend, read


def summary(run: EmbedRun) -> str:
    return f"{len(run.locations)} images embedded ({run.cached} from cache), {len(run.failures)} skipped"


def cmd_embed(args: argparse.Namespace) -> int:
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


def cmd_duplicates(args: argparse.Namespace) -> int:
    locations = find_images(args.folders)
    run, _, read = embed_locations(args, locations)
    groups = find_groups(run.vectors, args.threshold)
    for group in groups:
        for row, score in zip(group.members, group.scores, strict=True):
            print(f"{score:.4f}  {run.locations[row]}")
        print()
    if args.json:
        paths = [[run.locations[row] for row in group.members] for group in groups]
        Path(args.json).write_text(json.dumps({"groups": paths}, indent=1) + "\n")
    write_report(Path(args.html), groups, run.locations, read, args.threshold, len(run.locations), args.workers or 4)
    in_groups = sum(len(g.members) for g in groups)
    print(
        f"{summary(run)}; {len(groups)} groups of duplicates ({in_groups} images); report: {args.html}", file=sys.stderr
    )
    return 1 if run.failures else 0


def cmd_compare(args: argparse.Namespace) -> int:
    try:
        if args.remote:
            score = ImageSimilarityClient(args.remote, iam=args.iam).similarity(args.image_a, args.image_b)
        else:
            service = default_service()
            read = ImageReader(service.source)
            a, b = service.embed_images([read(args.image_a), read(args.image_b)])
            score = similarity(a, b)
    except (RequestError, ImageSimilarityError) as exc:
        print(exc.message, file=sys.stderr)
        return 1
    print(json.dumps({"similarity": score}))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .local_server import serve

    return serve(host=args.host, port=args.port, threads=args.threads, workers=args.workers,
                 explorer=ExplorerConfig(authorization=args.explorer_authorization))


def threshold(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("the threshold is a similarity score between 0 and 1")
    return value


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--remote", metavar="URL", help="use the deployed API at URL instead of the local model")
    parser.add_argument("--iam", action="store_true", help="sign --remote requests with SigV4 (AWS_IAM stacks)")


def add_bulk_options(parser: argparse.ArgumentParser) -> None:
    add_backend_options(parser)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images per model call")
    parser.add_argument("--workers", type=int, default=0, help="parallel readers / requests (default: all cores)")
    parser.add_argument("--cache", metavar="DIR", help=f"embedding cache (default {default_cache_root()})")
    parser.add_argument("--no-cache", action="store_true", help="embed everything again, remember nothing")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="image-similarity", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    embed = sub.add_parser("embed", help="embed images: JSON lines on stdout, or a vectors file with --out")
    embed.add_argument("images", nargs="+", metavar="IMAGE", help="file, folder, or http(s):// / s3:// URL")
    embed.add_argument("--out", metavar="FILE", help=f"write all vectors to FILE ({' / '.join(FORMATS)}); resumable")
    add_bulk_options(embed)
    embed.set_defaults(run=cmd_embed)
    dups = sub.add_parser("duplicates", help="group near-duplicate images and write an HTML report")
    dups.add_argument("folders", nargs="+", metavar="DIR", help="folder (walked recursively) or image files")
    dups.add_argument(
        "--threshold",
        type=threshold,
        default=DUPLICATE_THRESHOLD,
        help=f"similarity from which two images are duplicates (default {DUPLICATE_THRESHOLD})",
    )
    dups.add_argument("--json", metavar="OUT", help='write {"groups": [[path, ...], ...]} to OUT')
    dups.add_argument("--html", metavar="FILE", default="duplicates.html", help="the report (default %(default)s)")
    add_bulk_options(dups)
    dups.set_defaults(run=cmd_duplicates)
    compare = sub.add_parser("compare", help="print the similarity of two images, in [0, 1]")
    compare.add_argument("image_a", metavar="A")
    compare.add_argument("image_b", metavar="B")
    add_backend_options(compare)
    compare.set_defaults(run=cmd_compare)
    serve = sub.add_parser("serve", help="serve the HTTP API (POST /image-similarity, GET /ping, /api-explorer/)")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    serve.add_argument("--threads", type=int, default=4, help="concurrent requests per worker (default 4)")
    serve.add_argument("--workers", type=int, help="processes, each with its own model (default: one per CPU)")
    serve.add_argument("--explorer-authorization", choices=AUTHORIZATIONS,
                       default=os.environ.get("EXPLORER_AUTHORIZATION", "NONE"),
                       help="NONE: the API Explorer can try the API; AWS_IAM: reference only, as on an IAM-protected "
                            "deployment (default: $EXPLORER_AUTHORIZATION, else NONE)")
    serve.set_defaults(run=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(levelname)s %(name)s %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (OutputFormatError, ImageSimilarityError) as exc:
        parser.exit(2, f"image-similarity: {exc}\n")


if __name__ == "__main__":
    raise SystemExit(main())
