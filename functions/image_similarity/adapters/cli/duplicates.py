"""`image-similarity duplicates`: group an album's near-duplicates and write an HTML report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from image_similarity.adapters.cli.common import add_bulk_options, embed_locations, summary, threshold
from image_similarity.album.duplicate_report import write_report
from image_similarity.album.duplicates import find_groups
from image_similarity.album.image_files import find_images
from image_similarity.core.settings import DUPLICATE_THRESHOLD


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



def register(sub: argparse._SubParsersAction) -> None:
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
