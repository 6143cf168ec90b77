"""`image-similarity` command line: embed images or folders, compare two images, find duplicates, index and search
collections, serve the API.

Exit status: 0 when every image was used, 1 when some were skipped (each is reported on stderr), 2 for usage errors.
Each command lives in its own module of this package, which registers its sub-parser.
"""

from __future__ import annotations

import argparse
import logging
import os

from image_similarity.adapters.cli import compare, duplicates, embed, search, serve
from image_similarity.album.vector_files import OutputFormatError
from image_similarity.client import ImageSimilarityError
from image_similarity.core.errors import RequestError

COMMANDS = (embed, duplicates, compare, search, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="image-similarity", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(levelname)s %(name)s %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (OutputFormatError, ImageSimilarityError) as exc:
        parser.exit(2, f"image-similarity: {exc}\n")
    except RequestError as exc:  # the local collection store's 404 / 409, a bad collection name
        parser.exit(2, f"image-similarity: {exc.message}\n")
