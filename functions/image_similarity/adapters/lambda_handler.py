"""AWS Lambda handler for API Gateway REST proxy events."""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from typing import Any
from urllib.parse import unquote

from image_similarity.core.request_log import log_request, request_id
from image_similarity.core.service import Response, default_service
from image_similarity.search.api import match
from image_similarity.search.stores import default_routes

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Content-Type,Authorization,X-Amz-Date,X-Amz-Security-Token,X-Api-Key",
    "Access-Control-Allow-Methods": "OPTIONS,GET,POST,DELETE",
}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    start = time.perf_counter()
    service = default_service()
    path = collection_path(event)
    if (route := match(path)) is None:
        response = _answer(event, service.handle)
    else:
        response = _answer(event, lambda body: default_routes().handle(str(event.get("httpMethod", "")), path, body))
    log_request(
        response,
        request_id=request_id((event.get("requestContext") or {}).get("requestId") or getattr(context, "aws_request_id", None)),
        lambda_request_id=getattr(context, "aws_request_id", None),
        method=str(event.get("httpMethod", "")),
        path=str(event.get("path", "")) if route is None else route.template,  # never an item id
        duration_ms=(time.perf_counter() - start) * 1000,
    )
    return _proxy(response, service)


def collection_path(event: dict[str, Any]) -> str:
    """The percent-decoded request path: rebuilt from the resource and its parameters when API Gateway matched a
    /collections/ resource, else the event's path."""
    resource, parameters = event.get("resource") or "", event.get("pathParameters") or {}
    if resource.startswith("/collections/") and parameters:
        return re.sub(r"\{(\w+)\+?\}", lambda m: str(parameters.get(m.group(1), "")), resource)
    return unquote(str(event.get("path") or ""))


def _answer(event: dict[str, Any], answer) -> Response:
    body = event.get("body")
    if body is not None and event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return Response(400, {"message": "the base64-encoded request body could not be decoded"})
    return answer(body)


def _proxy(response: Response, service) -> dict[str, Any]:
    return {
        "statusCode": response.status,
        "headers": {"Content-Type": "application/json", "X-Model-Version": service.model_version, **CORS_HEADERS},
        "body": json.dumps(response.body),
        "isBase64Encoded": False,
    }
