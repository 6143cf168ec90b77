"""A Python client for the HTTP API: a local server (`image-similarity serve`) or a deployed stack's URL.

Requests to a stack deployed with `APIGatewayAuthorization=AWS_IAM` are signed with SigV4 through botocore, with
credentials from the default chain (environment, profile, SSO, instance role). Throttling (429) and server errors
(5xx) are retried with exponential backoff; every failure surfaces as one exception type, `ImageSimilarityError`,
carrying the API's own message.
"""

from __future__ import annotations

import base64
import json
import random
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import urllib3

from image_similarity.album.image_files import is_url

# API Gateway invoke URLs name their region: https://{api-id}.execute-api.{region}.amazonaws.com/{stage}/...
EXECUTE_API_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com", re.IGNORECASE)
STACK_OUTPUT = "ImageSimilarity"
AUTHORIZATION_PARAMETER = "APIGatewayAuthorization"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0
API_PATH = "/image-similarity"
# The API's limits on one add: 500 items and a 6 MiB body (6,291,456 bytes), with room to spare.
MAX_ITEMS_PER_ADD = 500
MAX_ADD_BODY = 6_000_000

ImageInput = str | Path | bytes


class ImageSimilarityError(Exception):
    """The API refused or failed the request. `status` is the HTTP status (None if no answer came back)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


class ImageSimilarityClient:
    """`embed(image)` -> the 512-float embedding; `similarity(a, b)` -> a score in [0, 1].

    An image is a local file path (str or Path), raw bytes, or an http(s):// or s3:// URL (the service fetches it).
    """

    def __init__(
        self,
        url: str,
        *,
        iam: bool = False,
        region: str | None = None,
        credentials: Any = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        pool_size: int = 10,
    ):
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.model_version: str | None = None  # the X-Model-Version of the last answer
        self._http = urllib3.PoolManager(maxsize=pool_size, retries=False)
        self._signer = _SigV4Signer(url, region, credentials) if iam else None

    @classmethod
    def from_stack(cls, stack_name: str, *, cloudformation: Any = None, **options: Any) -> ImageSimilarityClient:
        """A client for a deployed stack: the URL from its `ImageSimilarity` output, signing if it uses AWS_IAM."""
        if cloudformation is None:
            import boto3

            cloudformation = boto3.client("cloudformation")
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if STACK_OUTPUT not in outputs:
            raise ImageSimilarityError(
                f"stack {stack_name} has no {STACK_OUTPUT} output: is its ImageSimilarity parameter set to yes?"
            )
        parameters = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
        options.setdefault("iam", parameters.get(AUTHORIZATION_PARAMETER) == "AWS_IAM")
        options.setdefault("region", cloudformation.meta.region_name)
        return cls(outputs[STACK_OUTPUT], **options)

    def embed(self, image: ImageInput) -> np.ndarray:
        return np.asarray(self.request(_image_fields(image, ""))["result"], dtype=np.float32)

    def similarity(self, a: ImageInput, b: ImageInput) -> float:
        return float(self.request({**_image_fields(a, "_1"), **_image_fields(b, "_2")})["similarity"])

    # -- collections (search) ----------------------------------------------------------------------------------

    def add(self, collection: str, items: Iterable[dict[str, Any]]) -> int:
        """Add or replace items: each `{"id": ..., "image": path | bytes | URL}` or `{"id": ..., "vector": [...]}`,
        with optional `"metadata"`. Sent in as few requests as the API's limits allow; returns how many were added."""
        added = 0
        for batch in _add_batches(_collection_item(item) for item in items):
            added += self.request({"items": batch}, url=self._collection_url(collection, "items"))["added"]
        return added

    def search(self, collection: str, image_or_vector: ImageInput | Any, k: int = 10,
               min_similarity: float = 0.0) -> list[dict[str, Any]]:
        """The `k` best matches (`id`, `similarity`, `metadata`), best first, each at or above `min_similarity`."""
        query = _query_fields(image_or_vector)
        answer = self.request({**query, "k": k, "min_similarity": min_similarity},
                              url=self._collection_url(collection, "search"))
        return answer["matches"]

    def collection(self, name: str) -> dict[str, Any]:
        """`{"name", "count", "model_version"}`."""
        return self.request(None, method="GET", url=self._collection_url(name))

    def delete(self, collection: str, item_id: str | None = None) -> dict[str, Any]:
        """Delete one item, or with no `item_id` the whole collection."""
        url = self._collection_url(collection, None if item_id is None else f"items/{quote(item_id, safe='')}")
        return self.request(None, method="DELETE", url=url)

    def _collection_url(self, name: str, tail: str | None = None) -> str:
        """Beside the API's own path: `https://host/stage/image-similarity` -> `https://host/stage/collections/...`"""
        base = self.url[: -len(API_PATH)] if self.url.endswith(API_PATH) else self.url.rstrip("/")
        return f"{base}/collections/{quote(name, safe='')}" + (f"/{tail}" if tail else "")

    # -- transport ----------------------------------------------------------------------------------------------

    def request(self, payload: dict[str, Any] | None, method: str = "POST", url: str | None = None) -> dict[str, Any]:
        """Send one JSON body (or none); retry 429 / 5xx / connection failures; raise ImageSimilarityError
        otherwise."""
        url = url or self.url
        body = b"" if payload is None else json.dumps(payload).encode()
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            headers = {"Content-Type": "application/json"}
            if self._signer:  # sign every attempt: a signature is only valid for a few minutes
                headers = self._signer.sign(method, url, body, headers)
            try:
                response = self._http.request(method, url, body=body or None, headers=headers, timeout=self.timeout)
            except urllib3.exceptions.HTTPError as exc:
                if last:
                    raise ImageSimilarityError(f"no answer from {url}: {exc}") from exc
                time.sleep(self._delay(attempt, None))
                continue
            if response.status in RETRY_STATUSES and not last:
                time.sleep(self._delay(attempt, response.headers.get("Retry-After")))
                continue
            answer = _json(response.data)
            if response.status != 200:
                message = answer.get("message") or answer.get("Message") or response.data.decode(errors="replace")
                raise ImageSimilarityError(str(message), response.status)
            self.model_version = response.headers.get("X-Model-Version", self.model_version)
            return answer
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """The server's Retry-After when it gives one, else exponential backoff with full jitter."""
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), MAX_RETRY_AFTER)
        return random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))


class _SigV4Signer:
    """SigV4 headers for API Gateway (`execute-api`), credentials from botocore's default chain unless given."""

    def __init__(self, url: str, region: str | None, credentials: Any):
        import botocore.session

        session = botocore.session.get_session()
        credentials = credentials or session.get_credentials()
        if credentials is None:
            raise ImageSimilarityError("the API uses AWS_IAM but no AWS credentials were found (see `aws configure`)")
        match = EXECUTE_API_HOST.search(url)
        region = region or (match.group(1) if match else None) or session.get_config_variable("region")
        if not region:
            raise ImageSimilarityError("cannot tell the API's AWS region: pass region=...")
        self.url, self.region, self.credentials = url, region, credentials

    def sign(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        # Refreshable credentials (SSO, assumed roles) may rotate between calls: freeze them once per request.
        SigV4Auth(self.credentials.get_frozen_credentials(), "execute-api", self.region).add_auth(request)
        return dict(request.headers.items())


def _image_fields(image: ImageInput, suffix: str) -> dict[str, str]:
    """A URL goes as `url`; a path's or bytes' content goes base64-encoded as `img`."""
    if isinstance(image, str) and is_url(image):
        return {f"url{suffix}": image}
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    return {f"img{suffix}": base64.b64encode(data).decode()}


def _collection_item(item: dict[str, Any]) -> dict[str, Any]:
    """The API's item: `image` becomes `url` or `img`; `id`, `vector` and `metadata` pass as they are."""
    if "image" not in item:
        return {key: _as_list(value) if key == "vector" else value for key, value in item.items()}
    rest = {key: value for key, value in item.items() if key != "image"}
    return {**rest, **_image_fields(item["image"], "")}


def _query_fields(query: Any) -> dict[str, Any]:
    if isinstance(query, str | Path | bytes):
        return _image_fields(query, "")
    return {"vector": _as_list(query)}


def _as_list(vector: Any) -> list[float]:
    return np.asarray(vector, dtype=np.float64).ravel().tolist()


def _add_batches(items: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Consecutive items, at most 500 and 6,000,000 bytes of JSON per request."""
    batch: list[dict[str, Any]] = []
    size = 0
    for item in items:
        item_size = len(json.dumps(item))
        if batch and (len(batch) == MAX_ITEMS_PER_ADD or size + item_size > MAX_ADD_BODY):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_size + 2
    if batch:
        yield batch


def _json(data: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(data)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}
