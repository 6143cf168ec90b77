"""`image-similarity compare`: the similarity of two images (local files may be camera-size, in any format the
album commands read; with --remote they are sent as the API accepts them)."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from image_similarity.adapters.cli import common
from image_similarity.adapters.cli.common import add_backend_options
from image_similarity.album.bulk_embed import ImageReader
from image_similarity.album.image_files import is_url
from image_similarity.album.photo_decode import for_api, photo_to_model_input
from image_similarity.client import ImageSimilarityError
from image_similarity.core.errors import RequestError
from image_similarity.core.score import similarity


def cmd_compare(args: argparse.Namespace) -> int:
    try:
        if args.remote:
            score = common.open_client(args).similarity(*(_for_remote(image) for image in (args.image_a, args.image_b)))
        else:
            service = common.default_service()  # the one patch point for tests
            read = ImageReader(service.source)
            size = service.embedder.input_size
            a, b = service.embedder.embed(np.stack([photo_to_model_input(read(image), size)
                                                    for image in (args.image_a, args.image_b)]))
            score = similarity(a, b)
    except (RequestError, ImageSimilarityError) as exc:
        print(f"image-similarity: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps({"similarity": score}))
    return 0


def _for_remote(image: str) -> str | bytes:
    """A URL is fetched by the API; a local file is sent as the API accepts it."""
    return image if is_url(image) else for_api(ImageReader.read_file(image))


def register(sub: argparse._SubParsersAction) -> None:
    compare = sub.add_parser("compare", help="print the similarity of two images, in [0, 1]", description=__doc__)
    compare.add_argument("image_a", metavar="A", help="an image file or an http(s):// or s3:// URL")
    compare.add_argument("image_b", metavar="B", help="the other image, likewise")
    add_backend_options(compare)
    compare.set_defaults(run=cmd_compare)
