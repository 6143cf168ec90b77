"""`image-similarity index` and `image-similarity search`: a folder into a collection, images against a collection.

Locally the collection lives in the local store (IMAGE_SIMILARITY_DATA_DIR, the same one `image-similarity serve`
uses); with `--remote URL` in the deployed API's collections, embedded by that API. `index` adds each batch as soon as
it is embedded and embeddings go through the embed cache, so an interrupted run picks up where it stopped: images
already embedded come from the cache, and adding an id again replaces it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator

import numpy as np
from tqdm import tqdm

from image_similarity.adapters.cli.common import add_bulk_options, open_backend, open_cache, threshold
from image_similarity.album.bulk_embed import Embedded, default_workers, iter_embeddings
from image_similarity.album.image_files import find_images
from image_similarity.client import MAX_ITEMS_PER_ADD, ImageSimilarityClient
from image_similarity.search.api import check_name, most_matches
from image_similarity.search.store import Match


class Collection:
    """One collection, in the local store or behind the deployed API: add and search vectors."""

    def __init__(self, name: str, args: argparse.Namespace, model_version: str | None):
        self.name = name
        self.model_version = model_version
        if args.remote:
            self.client = ImageSimilarityClient(args.remote, iam=args.iam)
            self.store = None
        else:
            from image_similarity.search.local_store import LocalStore, default_data_dir

            self.client = None
            self.store = LocalStore(default_data_dir())

    def describe(self) -> dict:
        """`{"name", "count", "model_version"}`; a missing collection is a 404 (the store's, or the API's)."""
        if self.client:
            return self.client.collection(self.name)
        info = self.store.describe(self.name)
        return {"name": info.name, "count": info.count, "model_version": info.model_version}

    def add(self, ids: list[str], vectors: np.ndarray) -> None:
        if self.client:
            self.client.add(self.name, [{"id": i, "vector": v} for i, v in zip(ids, vectors, strict=True)])
        else:
            self.store.upsert(self.name, ids, vectors, [{}] * len(ids), self.model_version)

    def search(self, vector: np.ndarray, k: int, min_similarity: float) -> list[dict]:
        if self.client:
            return self.client.search(self.name, vector, k=k, min_similarity=min_similarity)
        matches: list[Match] = self.store.search(self.name, vector, k, min_similarity, self.model_version)
        return [{"id": m.id, "similarity": round(m.similarity, 6), "metadata": m.metadata} for m in matches]


def embeddings(args: argparse.Namespace, locations: list[str], persistent_cache: bool
               ) -> tuple[Iterator[Embedded], str | None]:
    backend, read = open_backend(args)
    cache = open_cache(args, backend, persistent=persistent_cache)
    workers = args.workers or default_workers(bool(args.remote))
    version = None if args.remote else backend.service.model_version
    return iter_embeddings(locations, backend, read, cache, args.batch_size, workers), version


def cmd_index(args: argparse.Namespace) -> int:
    check_name(args.collection)  # before any work: a bad name must not cost a folder's embedding
    locations = find_images(args.folders)
    outcomes, version = embeddings(args, locations, persistent_cache=True)
    collection = Collection(args.collection, args, version)
    ids: list[str] = []
    rows: list[np.ndarray] = []
    added = failed = 0
    with tqdm(total=len(locations), unit="img", disable=None, file=sys.stderr) as bar:
        for outcome in outcomes:
            bar.update()
            if outcome.vector is None:
                bar.write(f"{outcome.location}: {outcome.error}", file=sys.stderr)
                failed += 1
                continue
            ids.append(outcome.location)
            rows.append(outcome.vector)
            if len(ids) == MAX_ITEMS_PER_ADD:
                collection.add(ids, np.stack(rows))
                added += len(ids)
                ids, rows = [], []
        if ids:
            collection.add(ids, np.stack(rows))
            added += len(ids)
    print(f"{added} images in collection {collection.name}, {failed} skipped", file=sys.stderr)
    return 1 if failed else 0


def cmd_search(args: argparse.Namespace) -> int:
    check_name(args.collection)
    outcomes, version = embeddings(args, find_images(args.images), persistent_cache=bool(args.cache))
    collection = Collection(args.collection, args, version)
    failed = 0
    for outcome in outcomes:
        if outcome.vector is None:
            print(f"{outcome.location}: {outcome.error}", file=sys.stderr)
            failed += 1
            continue
        matches = collection.search(outcome.vector, args.k, args.min_similarity)
        print(json.dumps({"image": outcome.location, "matches": matches}), flush=True)
    return 1 if failed else 0


def k_value(text: str) -> int:
    value = int(text)
    if not 1 <= value <= most_matches():
        raise argparse.ArgumentTypeError(f"k is between 1 and {most_matches()}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    index = sub.add_parser("index", help="add a folder's images to a collection (resumable)")
    index.add_argument("folders", nargs="+", metavar="DIR", help="folder (walked recursively), image files or URLs")
    index.add_argument("--collection", required=True, help="the collection's name (3-63 of a-z, 0-9 and -)")
    add_bulk_options(index)
    index.set_defaults(run=cmd_index)

    search = sub.add_parser("search", help="find each image's best matches in a collection (JSON lines)")
    search.add_argument("images", nargs="+", metavar="IMAGE", help="file, folder, or http(s):// / s3:// URL")
    search.add_argument("--collection", required=True, help="the collection to search")
    search.add_argument("-k", type=k_value, default=10, help="matches per image, 1-100 (default 10)")
    search.add_argument("--min-similarity", type=threshold, default=0.0, help="leave out matches below this score")
    add_bulk_options(search)
    search.set_defaults(run=cmd_search)
