"""The API core: a request body in, an HTTP status and JSON body out. No web framework, no AWS event shapes."""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from image_similarity.core.contract import parse_request
from image_similarity.core.embedder import Embedder, ModelInfo
from image_similarity.core.errors import RequestError, body_too_large
from image_similarity.core.images import to_model_input
from image_similarity.core.score import similarity
from image_similarity.core.settings import DECODE_SLOTS, MAX_BODY_BYTES, Settings
from image_similarity.sources.image_source import ImageSource, describe_input


@dataclass(frozen=True)
class Response:
    """`facts` are for the request log only (stage timings, input kinds): never the body's content."""

    status: int
    body: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict, compare=False)


def error_response(exc: RequestError, facts: dict[str, Any] | None = None) -> Response:
    facts = {**(facts or {}), **({"detail": exc.detail} if exc.detail else {})}
    return Response(exc.status, {"message": exc.message}, facts)


class ImageSimilarityService:
    """Both API modes over one embedder. Every adapter (Lambda, SageMaker, local server, CLI) calls `handle`."""

    def __init__(self, embedder: Embedder, source: ImageSource, decode_slots: int = DECODE_SLOTS):
        self.embedder = embedder
        self.source = source
        # The decoded image is the one full-size copy (up to 64 MB at 4096 px RGBA): decodes at once are bounded,
        # so a worker's memory is too, however many threads serve it.
        self.decoding = threading.BoundedSemaphore(decode_slots)

    @property
    def model_version(self) -> str:
        return self.embedder.info.version

    def handle(self, body: bytes | str | None) -> Response:
        facts: dict[str, Any] = {}
        try:
            return Response(200, self._answer(body, facts), facts)
        except RequestError as exc:
            return error_response(exc, facts)
        except Exception:  # broad on purpose: a fault of ours (model, runtime): logged with its request, never shown
            facts["traceback"] = traceback.format_exc()
            return Response(500, {"message": "internal error: the service could not process the request"}, facts)

    def embed_images(self, images: list[bytes]) -> np.ndarray:
        """Raw image bytes -> one embedding row per image, all in one batch."""
        with self.decoding:
            batch = np.stack([to_model_input(data, self.embedder.input_size) for data in images])
        return self.embedder.embed(batch)

    def _answer(self, body: bytes | str | None, facts: dict[str, Any]) -> dict[str, Any]:
        facts["body_bytes"] = 0 if body is None else len(body)
        if body is None or len(body) == 0:
            raise RequestError(400, 'the request body is empty: send JSON such as {"url": "https://..."}')
        if len(body) > MAX_BODY_BYTES:
            raise body_too_large()
        request = parse_request(body)
        facts["inputs"] = [describe_input(name, value) for name, value in request.images]
        start = time.perf_counter()
        images = self.source.read_all(request.images)
        facts["read_ms"] = round((time.perf_counter() - start) * 1000, 1)
        vectors = self.embed_images(images)
        facts["embed_ms"] = round((time.perf_counter() - start) * 1000 - facts["read_ms"], 1)
        if request.is_pair:
            return {"similarity": similarity(vectors[0], vectors[1])}
        return {"result": vectors[0].tolist()}


def build_service(settings: Settings) -> ImageSimilarityService:
    return ImageSimilarityService(Embedder(ModelInfo.load(), settings.threads), ImageSource(settings.fetch))


@lru_cache(maxsize=1)
def default_service() -> ImageSimilarityService:
    """The process-wide service, built on first use from the environment (one ONNX session per process)."""
    return build_service(Settings.from_env())
