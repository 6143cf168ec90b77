"""`image-similarity undo`: put back every file that `duplicates --move-to` moved, from its JSON log."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from image_similarity.album.image_files import AlbumInputError
from image_similarity.album.moves import undo


def cmd_undo(args: argparse.Namespace) -> int:
    try:
        outcome = undo(Path(args.log))
    except ValueError as exc:
        raise AlbumInputError(str(exc)) from exc
    for move, reason in outcome.refused:
        print(f"not restored: {move.source}: {reason}", file=sys.stderr)
    print(f"restored {len(outcome.done)} files, {len(outcome.refused)} not restored", file=sys.stderr)
    return 1 if outcome.refused else 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("undo", help="move the files of a `duplicates --move-to` log back where they were",
                            description=__doc__)
    parser.add_argument("log", metavar="LOG", help="the JSON log that `duplicates --move-to` wrote")
    parser.set_defaults(run=cmd_undo)
