"""`image-similarity duplicates`: group an album's duplicates (or new photos against a library), suggest the copy
to keep, write the JSON result and an HTML report, and optionally move the other copies aside. Against a collection
(`--against-collection`, local or `--remote`): each new photo with the collection's items that match it."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from image_similarity.adapters.cli.common import (
    add_bulk_options,
    inputs,
    margin,
    open_embedding,
    progress_bar,
    threshold,
)
from image_similarity.adapters.cli.search import Collection, embeddings
from image_similarity.album.duplicate_finder import DuplicateResult, find_duplicates
from image_similarity.album.duplicate_report import write_report
from image_similarity.album.image_files import AlbumInputError
from image_similarity.album.keep import DEFAULT_KEEP, KEEP_RULES
from image_similarity.album.moves import apply_moves, default_log_path, plan_moves
from image_similarity.core.settings import (
    DUPLICATE_CERTAIN_THRESHOLD,
    DUPLICATE_CHECK_FLOOR,
    DUPLICATE_MARGIN,
    DUPLICATE_THRESHOLD,
    LIBRARY_MATCH_THRESHOLD,
)
from image_similarity.search.api import check_name, most_matches


def cmd_duplicates(args: argparse.Namespace) -> int:
    if (args.dry_run or args.log) and not args.move_to:
        raise AlbumInputError("--dry-run and --log go with --move-to DIR")
    if args.against_collection is not None:
        return _against_collection(args)
    locations = inputs(args.folders)
    json_out, html_out = _outputs(args)  # checked before any work: an hour of embedding is not lost to a typo
    embedding = open_embedding(args)
    result = find_duplicates(*locations, threshold=args.threshold, keep=args.keep, against=args.against,
                             embedding=embedding, margin=args.margin, certain=args.certain,
                             pixel_check=args.pixel_check, progress=progress_bar)
    if json_out != "-":
        _print_groups(result)
    document = json.dumps(result.to_json(), indent=1) + "\n"
    if json_out == "-":
        sys.stdout.write(document)
    elif json_out:
        Path(json_out).write_text(document)
    write_report(html_out, result, embedding.read, args.workers or 4)
    print(f"{result.scanned} files scanned, {result.scanned - len(result.skipped)} embedded, {len(result.skipped)} "
          f"skipped; {len(result.groups)} group{'' if len(result.groups) == 1 else 's'} of duplicates "
          f"({result.images_in_groups} images); "
          f"report: {html_out}", file=sys.stderr)
    status = 1 if result.skipped else 0
    if args.move_to:
        status = max(status, _move(result, locations if "-" in args.folders else args.folders, args))
    return status


def _against_collection(args: argparse.Namespace) -> int:
    """Each photo of DIR that matches items of the collection, with those items (up to the API's k), best first."""
    if args.against or args.html or args.move_to:
        raise AlbumInputError("--against-collection writes the matches (--json); --against, --html and --move-to go "
                              "with folders and libraries")
    check_name(args.against_collection)
    _check_output_names(args)
    json_out = args.json
    locations = inputs(args.folders)
    outcomes, version = embeddings(args, locations, persistent_cache=True)
    collection = Collection(args.against_collection, args, version)
    info = collection.describe()  # a missing collection stops here, before any photo is embedded
    skipped, photos = [], []
    threshold = LIBRARY_MATCH_THRESHOLD if args.threshold is None else args.threshold
    for outcome in tqdm(outcomes, total=len(locations), unit="img", disable=None, file=sys.stderr):
        if outcome.vector is None:
            skipped.append({"path": outcome.location, "reason": outcome.error})
            continue
        # `index` names items by their location: an image already in the collection is not its own duplicate.
        matches = [m for m in collection.search(outcome.vector, most_matches(), threshold)
                   if m["id"] != outcome.location]
        if matches:
            photos.append({"image": outcome.location, "matches": matches})
    photos.sort(key=lambda photo: photo["image"])  # embedded in parallel: finished in any order
    if json_out != "-":
        for photo in photos:
            print(photo["image"])
            for match in photo["matches"]:
                print(f"      {match['similarity']:.4f}  {match['id']}")
            print()
    document = {"model_version": info["model_version"], "threshold": threshold,
                "against_collection": collection.name, "scanned": len(locations),
                "embedded": len(locations) - len(skipped), "skipped": skipped, "photos": photos}
    text = json.dumps(document, indent=1) + "\n"
    if json_out == "-":
        sys.stdout.write(text)
    elif json_out:
        Path(json_out).write_text(text)
    print(f"{len(locations)} files scanned, {len(locations) - len(skipped)} embedded, {len(skipped)} skipped; "
          f"{len(photos)} photo{'' if len(photos) == 1 else 's'} match{'es' if len(photos) == 1 else ''} "
          f"collection {collection.name} "
          f"({info['count']} items)", file=sys.stderr)
    for photo in skipped:
        print(f"skipped {photo['path']}: {photo['reason']}", file=sys.stderr)
    return 1 if skipped else 0


def _outputs(args: argparse.Namespace) -> tuple[str | None, Path]:
    """The JSON destination (`-` is stdout) and the report: --html, else beside the JSON, else in a new temp folder."""
    _check_output_names(args)
    if args.html:
        return args.json, Path(args.html)
    if args.json and args.json != "-":
        return args.json, Path(args.json).with_suffix(".html")
    return args.json, Path(tempfile.mkdtemp(prefix="image-similarity-")) / "duplicates.html"


def _check_output_names(args: argparse.Namespace) -> None:
    """Before any work: an hour of embedding is not lost to a typo in an output name."""
    for name in (args.json, args.html):
        if name and name != "-" and not Path(name).parent.is_dir():
            raise AlbumInputError(f"{name}: the folder {Path(name).parent} does not exist")
        if name and Path(name).is_dir():
            raise AlbumInputError(f"{name} is a folder: name a file to write")


def _print_groups(result: DuplicateResult) -> None:
    """Human-readable groups: the kept copy first, marked; byte-identical copies marked too."""
    for group in result.groups:
        for index, image in enumerate(group.images):
            mark = "keep" if index == 0 else "same" if image.identical else "    "
            print(f"{mark}  {image.similarity:.4f}  {image.path}")
        print()


def _move(result: DuplicateResult, scanned: list[str], args: argparse.Namespace) -> int:
    destination = Path(args.move_to)
    moves = plan_moves(result, scanned, destination)
    if args.dry_run:
        for move in moves:
            print(f"would move {move.source} -> {move.target}", file=sys.stderr)
        print(f"{len(moves)} files would be moved (dry run: nothing was moved)", file=sys.stderr)
        return 0
    log = Path(args.log) if args.log else default_log_path(destination)
    outcome = apply_moves(moves, log)
    for move, reason in outcome.refused:
        print(f"not moved: {move.source}: {reason}", file=sys.stderr)
    if outcome.done:
        print(f"moved {len(outcome.done)} files into {destination}; undo with: image-similarity undo {log}",
              file=sys.stderr)
    return 1 if outcome.refused else 0


def register(sub: argparse._SubParsersAction) -> None:
    dups = sub.add_parser(
        "duplicates", help="group duplicate images, suggest which copy to keep, write JSON and an HTML report",
        description=__doc__)
    dups.add_argument("folders", nargs="+", metavar="DIR",
                      help="folders (walked recursively), image files, or - to read names from stdin")
    dups.add_argument("--threshold", type=threshold,
                      help="similarity from which two images may be duplicates (default: the model's 1 %% "
                           f"false-positive threshold, {DUPLICATE_THRESHOLD}, in an album, and "
                           f"{DUPLICATE_CHECK_FLOOR} for pairs the pixel check confirms; with --against, "
                           f"{DUPLICATE_CHECK_FLOOR} when the pixel check confirms and the 0.1 %% threshold, "
                           f"{LIBRARY_MATCH_THRESHOLD}, only where it cannot run; with --against-collection, "
                           f"{LIBRARY_MATCH_THRESHOLD}); a threshold given holds for the pixel check too")
    dups.add_argument("--margin", type=margin, default=DUPLICATE_MARGIN,
                      help="how far an album pair's similarity must stand out from its two images' 10th-best "
                           "matches in the album, so look-alikes (screenshots, textures) are not grouped; 0 groups "
                           "from the threshold alone (default %(default)s: calibrated for the model; not used with "
                           "--against or --against-collection)")
    dups.add_argument("--certain", type=threshold, default=DUPLICATE_CERTAIN_THRESHOLD,
                      help="similarity from which a pair is a duplicate whatever its neighbours or pixels, such as "
                           "a re-saved photo among many shots of one scene (default %(default)s: one in 100,000 "
                           "unrelated album pairs, calibrated for the model; 1 turns it off)")
    dups.add_argument("--no-pixel-check", dest="pixel_check", action="store_false",
                      help="group on similarity alone: skip the check of candidate pairs by their keypoints, which "
                           "reads those images again (faster; in an album it finds fewer recaptures and hard crops, "
                           "against a library it reports about one wrong match in four: docs/QUALITY.md; default: "
                           "check)")
    dups.add_argument("--keep", choices=KEEP_RULES, default=DEFAULT_KEEP,
                      help="which copy of a group to keep: largest = most pixels, then least compressed, then oldest; "
                           "oldest / newest by EXIF date, else file time; path-order = first path (default "
                           "%(default)s)")
    dups.add_argument("--against", metavar="LIBRARY",
                      help="report only images of DIR that match this library: a folder, or a vectors file from "
                           "`embed --out` (default: find duplicates within DIR)")
    dups.add_argument("--against-collection", metavar="NAME",
                      help="report each image of DIR that matches items of this collection (`image-similarity "
                           "index`), with those items; with --remote, the deployed API's collection (default: find "
                           "duplicates within DIR)")
    dups.add_argument("--json", metavar="OUT", help="write the full result as JSON to OUT, - for stdout "
                                                    "(default: none)")
    dups.add_argument("--html", metavar="FILE",
                      help="the HTML report (default: beside --json OUT as .html, else duplicates.html in a new "
                           "temporary folder; its path is printed)")
    dups.add_argument("--move-to", metavar="DIR",
                      help="move every copy not kept into DIR, keeping paths relative to the scanned folders; never "
                           "deletes or overwrites (default: move nothing)")
    dups.add_argument("--dry-run", action="store_true", help="with --move-to: print the moves, make none")
    dups.add_argument("--log", metavar="FILE",
                      help="with --move-to: the JSON log of the moves, for `image-similarity undo` (default "
                           "DIR/moves-DATE-TIME.json)")
    add_bulk_options(dups)
    dups.set_defaults(run=cmd_duplicates)
