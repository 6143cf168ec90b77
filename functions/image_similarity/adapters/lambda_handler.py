"""AWS Lambda handler for API Gateway REST proxy events."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from ..service import Response, default_service

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Content-Type,Authorization,X-Amz-Date,X-Amz-Security-Token,X-Api-Key",
    "Access-Control-Allow-Methods": "OPTIONS,POST",
}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    service = default_service()
    body = event.get("body")
    if body is not None and event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return _proxy(Response(400, {"message": "the base64-encoded request body could not be decoded"}), service)
    return _proxy(service.handle(body), service)


def _proxy(response: Response, service) -> dict[str, Any]:
    return {
        "statusCode": response.status,
        "headers": {"Content-Type": "application/json", "X-Model-Version": service.model_version, **CORS_HEADERS},
        "body": json.dumps(response.body),
        "isBase64Encoded": False,
    }
