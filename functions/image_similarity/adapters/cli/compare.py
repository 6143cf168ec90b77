"""`image-similarity compare`: the similarity of two images."""

from __future__ import annotations

import argparse
import json
import sys

from image_similarity.adapters.cli import common
from image_similarity.adapters.cli.common import add_backend_options
from image_similarity.album.bulk_embed import ImageReader
from image_similarity.client import ImageSimilarityError
from image_similarity.core.errors import RequestError
from image_similarity.core.service import similarity


def cmd_compare(args: argparse.Namespace) -> int:
    try:
        if args.remote:
            score = common.open_client(args).similarity(args.image_a, args.image_b)
        else:
            service = common.default_service()  # the one patch point for tests
            read = ImageReader(service.source)
            a, b = service.embed_images([read(args.image_a), read(args.image_b)])
            score = similarity(a, b)
    except (RequestError, ImageSimilarityError) as exc:
        print(exc.message, file=sys.stderr)
        return 1
    print(json.dumps({"similarity": score}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    compare = sub.add_parser("compare", help="print the similarity of two images, in [0, 1]", description=__doc__)
    compare.add_argument("image_a", metavar="A", help="an image file or an http(s):// or s3:// URL")
    compare.add_argument("image_b", metavar="B", help="the other image, likewise")
    add_backend_options(compare)
    compare.set_defaults(run=cmd_compare)
