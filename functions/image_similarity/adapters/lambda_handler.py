"""AWS Lambda handler for API Gateway REST proxy events."""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

from image_similarity.core.request_log import log_request, request_id
from image_similarity.core.service import Response, default_service

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Content-Type,Authorization,X-Amz-Date,X-Amz-Security-Token,X-Api-Key",
    "Access-Control-Allow-Methods": "OPTIONS,POST",
}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    start = time.perf_counter()
    service = default_service()
    response = _answer(event, service)
    log_request(
        response,
        request_id=request_id((event.get("requestContext") or {}).get("requestId") or getattr(context, "aws_request_id", None)),
        lambda_request_id=getattr(context, "aws_request_id", None),
        method=str(event.get("httpMethod", "")),
        path=str(event.get("path", "")),
        duration_ms=(time.perf_counter() - start) * 1000,
    )
    return _proxy(response, service)


def _answer(event: dict[str, Any], service) -> Response:
    body = event.get("body")
    if body is not None and event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return Response(400, {"message": "the base64-encoded request body could not be decoded"})
    return service.handle(body)


def _proxy(response: Response, service) -> dict[str, Any]:
    return {
        "statusCode": response.status,
        "headers": {"Content-Type": "application/json", "X-Model-Version": service.model_version, **CORS_HEADERS},
        "body": json.dumps(response.body),
        "isBase64Encoded": False,
    }
