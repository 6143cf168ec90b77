"""`image-similarity serve`: the HTTP API and the API Explorer on this machine."""

from __future__ import annotations

import argparse
import os

from image_similarity.adapters.explorer_page import AUTHORIZATIONS, ExplorerConfig


def cmd_serve(args: argparse.Namespace) -> int:
    from image_similarity.adapters.local_server import serve

    return serve(host=args.host, port=args.port, threads=args.threads, workers=args.workers,
                 explorer=ExplorerConfig(authorization=args.explorer_authorization))


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="serve the HTTP API (POST /image-similarity, GET /ping, /api-explorer/)",
                           description=__doc__)
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"),
                       help="address to listen on; 0.0.0.0 opens it to the network (default: $HOST, else 127.0.0.1)")
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")),
                       help="TCP port (default: $PORT, else 8080)")
    serve.add_argument("--threads", type=int, default=4, help="concurrent requests per worker (default 4)")
    serve.add_argument("--workers", type=int, help="processes, each with its own model (default: one per CPU)")
    serve.add_argument("--explorer-authorization", choices=AUTHORIZATIONS,
                       default=os.environ.get("EXPLORER_AUTHORIZATION", "NONE"),
                       help="NONE: the API Explorer can try the API; AWS_IAM: reference only, as on an IAM-protected "
                            "deployment (default: $EXPLORER_AUTHORIZATION, else NONE)")
    serve.set_defaults(run=cmd_serve)
