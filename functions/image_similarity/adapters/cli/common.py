"""What the image commands share: the backend (local model or --remote API), the cache, embedding with progress."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from image_similarity.album.bulk_embed import (
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
from image_similarity.album.vector_cache import VectorCache, default_cache_root
from image_similarity.client import ImageSimilarityClient
from image_similarity.core.service import default_service
from image_similarity.core.settings import Settings
from image_similarity.sources.image_source import ImageSource


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


