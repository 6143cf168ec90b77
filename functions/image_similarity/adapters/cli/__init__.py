"""`image-similarity` command line: embed images or folders, compare two images, find duplicates and act on them,
index and search collections, serve the API.

Exit status: 0 when every image was used; 1 when some were skipped (each is reported on stderr) or a file could not
be read or written; 2 for bad options or inputs that name nothing (a missing path, a folder without images);
130 after Ctrl-C; 141 when the reader of the output went away (e.g. `| head`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from image_similarity.adapters.cli import batch, compare, duplicates, embed, search, serve, undo
from image_similarity.album.image_files import AlbumInputError
from image_similarity.album.vector_files import OutputFormatError
from image_similarity.batch.control import BatchControlError
from image_similarity.batch.locations import BatchInputError
from image_similarity.client import ImageSimilarityError
from image_similarity.core.errors import RequestError

COMMANDS = (embed, duplicates, undo, compare, search, serve, batch)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE


def _version() -> str:
    try:
        package = version("image-similarity")
    except PackageNotFoundError:  # run from a source tree that was never installed
        package = "unknown"
    from image_similarity.core.embedder import ModelInfo

    return f"image-similarity {package} (model {ModelInfo.load().version})"


class VersionAction(argparse.Action):
    """--version, computed only when asked for (it reads the model manifest)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print the program and model versions and exit")

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(_version())
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="image-similarity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=VersionAction)
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
    except (OutputFormatError, ImageSimilarityError, AlbumInputError, BatchInputError, BatchControlError) as exc:
        parser.exit(2, f"image-similarity: {exc}\n")
    except RequestError as exc:  # the local collection store's 404 / 409, a bad collection name
        parser.exit(2, f"image-similarity: {exc.message}\n")
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit: point it at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # an output folder that vanished, a full disk, a file without permission
        where = f": {exc.filename}" if exc.filename else ""
        parser.exit(1, f"image-similarity: {exc.strerror or exc}{where}\n")
