"""`image-similarity` command line: embed image files, compare two, or serve the API locally."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from ..errors import RequestError
from ..service import ImageSimilarityService, default_service, similarity

URL_SCHEMES = ("http://", "https://", "s3://")


def read_image(service: ImageSimilarityService, location: str) -> bytes:
    """A local file path, or an http(s)/s3 URL fetched under the same rules as the API's `url` field."""
    if location.lower().startswith(URL_SCHEMES):
        return service.source.read("url", location)
    try:
        return Path(location).read_bytes()
    except OSError as exc:
        raise RequestError(400, f"cannot read {location}: {exc.strerror}") from exc


def cmd_embed(args: argparse.Namespace) -> int:
    service = default_service()
    failed = 0
    for location in args.images:
        try:
            (vector,) = service.embed_images([read_image(service, location)])
        except RequestError as exc:
            print(f"{location}: {exc.message}", file=sys.stderr)
            failed += 1
            continue
        print(json.dumps({"image": location, "result": vector.tolist()}))
    return 1 if failed else 0


def cmd_compare(args: argparse.Namespace) -> int:
    service = default_service()
    try:
        a, b = service.embed_images([read_image(service, args.image_a), read_image(service, args.image_b)])
    except RequestError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    print(json.dumps({"similarity": similarity(a, b)}))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .local_server import serve

    serve(host=args.host, port=args.port, threads=args.threads)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="image-similarity", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    embed = sub.add_parser("embed", help="print one JSON line with the 512-float embedding per image")
    embed.add_argument("images", nargs="+", metavar="IMAGE", help="file path or http(s):// / s3:// URL")
    embed.set_defaults(run=cmd_embed)
    compare = sub.add_parser("compare", help="print the similarity of two images, in [0, 1]")
    compare.add_argument("image_a", metavar="A")
    compare.add_argument("image_b", metavar="B")
    compare.set_defaults(run=cmd_compare)
    serve = sub.add_parser("serve", help="serve the HTTP API (POST /image-similarity, GET /ping)")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    serve.add_argument("--threads", type=int, default=4, help="concurrent requests (default 4)")
    serve.set_defaults(run=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
