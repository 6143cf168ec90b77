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
from image_similarity.search.stores import NOT_DEPLOYED, deployed_routes

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Content-Type,Authorization,X-Amz-Date,X-Amz-Security-Token,X-Api-Key",
    "Access-Control-Allow-Methods": "OPTIONS,GET,POST,DELETE",
}


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """Any event gets an answer: API Gateway sends a dict, but a direct invocation can send any JSON value."""
    start = time.perf_counter()
    service = default_service()
    event = event if isinstance(event, dict) else {}
    path = collection_path(event)
    if (route := match(path)) is None:
        response = _answer(event, service.handle)
    elif (routes := deployed_routes()) is None:
        response = Response(404, {"message": NOT_DEPLOYED})
    else:
        method = _text(event.get("httpMethod"))
        response = _answer(event, lambda body: routes.handle(method, path, body))
    given_id = _text(_dict(event.get("requestContext")).get("requestId"))
    log_request(
        response,
        request_id=request_id(given_id or _text(getattr(context, "aws_request_id", None))),
        lambda_request_id=_text(getattr(context, "aws_request_id", None)),
        method=_text(event.get("httpMethod")),
        path=_text(event.get("path")) if route is None else route.template,  # never an item id
        duration_ms=(time.perf_counter() - start) * 1000,
    )
    return _proxy(response, service)


def collection_path(event: dict[str, Any]) -> str:
    """The percent-decoded request path: rebuilt from the resource and its parameters when API Gateway matched a
    /collections/ resource, else the event's path."""
    resource, parameters = _text(event.get("resource")), _dict(event.get("pathParameters"))
    if resource.startswith("/collections/") and parameters:
        return re.sub(r"\{(\w+)\+?\}", lambda m: _text(parameters.get(m.group(1))), resource)
    return unquote(_text(event.get("path")))


def _answer(event: dict[str, Any], answer) -> Response:
    body = event.get("body")
    if body is not None and not isinstance(body, str):
        return Response(400, {"message": "the event's body must be a string (the request's JSON text)"})
    # API Gateway sends a JSON boolean; the string "false" is not true.
    if body is not None and event.get("isBase64Encoded") is True:
        try:
            body = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return Response(400, {"message": "the base64-encoded request body could not be decoded"})
    return answer(body)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _proxy(response: Response, service) -> dict[str, Any]:
    return {
        "statusCode": response.status,
        "headers": {"Content-Type": "application/json", "X-Model-Version": service.model_version, **CORS_HEADERS},
        "body": json.dumps(response.body),
        "isBase64Encoded": False,
    }
