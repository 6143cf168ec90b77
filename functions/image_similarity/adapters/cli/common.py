"""What the image commands share: the backend (local model or --remote API), the cache, embedding with progress,
the input list (folders, files, URLs, or `-` for names on stdin) and option types that refuse bad values."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tqdm import tqdm

from image_similarity.album.bulk_embed import (
    DEFAULT_BATCH_SIZE,
    Backend,
    Embedded,
    EmbedRun,
    ImageReader,
    LocalBackend,
    RemoteBackend,
)
from image_similarity.album.embedding import Embedding
from image_similarity.album.image_files import find_images
from image_similarity.album.vector_cache import VectorCache, default_cache_root
from image_similarity.client import ImageSimilarityClient
from image_similarity.core.service import default_service
from image_similarity.core.settings import Settings
from image_similarity.sources.image_source import ImageSource

API_PATH = "/image-similarity"


def endpoint(url: str) -> str:
    """The API's URL from a stage URL (https://id.execute-api.region.amazonaws.com/prod), a local server's base URL
    (http://127.0.0.1:8080) or the full endpoint: the /image-similarity path is added when missing."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if not path.endswith(API_PATH):
        path += API_PATH
    return urlunsplit(parts._replace(path=path))


def open_client(args: argparse.Namespace) -> ImageSimilarityClient:
    return ImageSimilarityClient(endpoint(args.remote), iam=args.iam)


def open_backend(args: argparse.Namespace) -> tuple[Backend, ImageReader]:
    """The deployed API with --remote, else the model in this process; URLs are read under the API's rules."""
    if args.remote:
        return RemoteBackend(open_client(args)), ImageReader(ImageSource(Settings.from_env().fetch))
    service = default_service()
    return LocalBackend(service), ImageReader(service.source)


def open_cache(args: argparse.Namespace, backend: Backend, persistent: bool) -> VectorCache:
    folder = None if args.no_cache or not persistent else Path(args.cache) if args.cache else default_cache_root()
    return VectorCache(folder, backend.model, backend.dim)


@contextmanager
def progress_bar(total: int, unit: str) -> Iterator[Callable[[], object]]:
    """A progress bar on stderr (shown on terminals only); yields the function to call once per item done."""
    with tqdm(total=total, unit=unit, disable=None, file=sys.stderr) as bar:
        yield bar.update


class ProgressEmbedding(Embedding):
    """Embedding with a progress bar on stderr (shown on terminals only) that reports each skipped image."""

    def run(self, locations: list[str]) -> EmbedRun:
        with tqdm(total=len(locations), unit="img", disable=None, file=sys.stderr) as bar:

            def step(outcome: Embedded) -> None:
                if outcome.error:
                    bar.write(f"{outcome.location}: {outcome.error}", file=sys.stderr)
                bar.update()

            self.on_each = step
            return super().run(locations)


def open_embedding(args: argparse.Namespace, persistent: bool = True) -> Embedding:
    backend, read = open_backend(args)
    return ProgressEmbedding(backend, read, open_cache(args, backend, persistent), args.batch_size, args.workers)


def inputs(names: list[str]) -> list[str]:
    """The images to work on; `-` stands for names read from stdin, one a line (e.g. from `find ... -newer`)."""
    expanded: list[str] = []
    for name in names:
        expanded += [line.strip() for line in sys.stdin if line.strip()] if name == "-" else [name]
    return find_images(expanded)


def summary(run: EmbedRun) -> str:
    return f"{len(run.locations)} images embedded ({run.cached} from cache), {len(run.failures)} skipped"


def _from_0_to_1(text: str, meaning: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: {meaning}")
    return value


def threshold(text: str) -> float:
    return _from_0_to_1(text, "the threshold is a similarity score between 0 and 1")


def margin(text: str) -> float:
    return _from_0_to_1(text, "the margin is a difference of similarity scores, 0 to 1")


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 1")
    return int(text)


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--remote", metavar="URL",
        help="use the deployed API instead of the local model: its stage URL (the ImageSimilarity stack output "
             "without /image-similarity), a local server such as http://127.0.0.1:8080, or the full endpoint "
             "(default: the local model)")
    parser.add_argument("--iam", action="store_true",
                        help="sign --remote requests with SigV4, for stacks deployed with AWS_IAM (default: off)")


def add_bulk_options(parser: argparse.ArgumentParser) -> None:
    add_backend_options(parser)
    parser.add_argument("--batch-size", type=positive, default=DEFAULT_BATCH_SIZE, metavar="N",
                        help="images per model call (default %(default)s)")
    parser.add_argument("--workers", type=positive, default=0, metavar="N",
                        help="parallel readers / requests (default: one per CPU locally, 8 with --remote)")
    parser.add_argument("--cache", metavar="DIR", help=f"embedding cache folder (default {default_cache_root()})")
    parser.add_argument("--no-cache", action="store_true",
                        help="embed everything again and remember nothing (default: use the cache)")
