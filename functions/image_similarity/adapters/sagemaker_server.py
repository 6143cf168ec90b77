"""The SageMaker inference server: `GET /ping` and `POST /invocations` on port 8080 (the container's `serve`)."""

from __future__ import annotations

import logging
import os

from image_similarity.adapters.local_server import serve

DEFAULT_PORT = 8080


def main() -> int:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))
    # SAGEMAKER_BIND_TO_PORT is SageMaker's own override of the 8080 contract.
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT))
    return serve(host="0.0.0.0", port=port, threads=4, predict_path="/invocations")  # one worker per CPU


if __name__ == "__main__":
    raise SystemExit(main())
