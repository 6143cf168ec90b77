"""One structured JSON log line per API request, the same fields in AWS Lambda and locally, written by Powertools for
AWS Lambda's Logger: request_id, method, path, status, duration_ms, the service's stage timings and input kinds.

Never logged: image bytes, base64 text, URL paths or query strings (pre-signed S3 URLs carry credentials in them).
Error messages are logged with any URL cut to its scheme and host. A 500's traceback is a field of its request's
line, so it carries that request's id.
"""

from __future__ import annotations

import json
import re
import uuid
from functools import partial
from typing import Any

from aws_lambda_powertools import Logger

from image_similarity.core.service import Response

# ASCII only: a lone surrogate (`\ud800`) in a field name or host cannot be encoded as UTF-8, and Powertools' default
# (ensure_ascii=False) then dropped the whole line for a logging traceback.
logger = Logger(service="image-similarity",
                json_serializer=partial(json.dumps, default=str, separators=(",", ":"), ensure_ascii=True))
# Fields whose text comes from errors, which may quote a URL: cut to its scheme and host.
SCRUBBED = ("error", "detail", "traceback")
ERROR_CHARS, TRACEBACK_CHARS = 300, 8000
# Anything from a scheme to the end of its host name; the path and query after it are dropped.
URL_TAIL = re.compile(r"\b([a-z][a-z0-9+.-]*://[^/\s?#'\"]*)[^\s'\"]*", re.IGNORECASE)
CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def request_id(given: str | None) -> str:
    """The caller's id (X-Request-Id) when it is a plain token, otherwise a new one: log lines must not carry
    whatever a header happens to contain."""
    return given if given and CLIENT_REQUEST_ID.match(given) else str(uuid.uuid4())


def scrub(text: str) -> str:
    return URL_TAIL.sub(r"\1/…", text)


def log_request(response: Response, *, request_id: str, method: str, path: str, duration_ms: float,
                **extra: Any) -> None:
    fields: dict[str, Any] = {
        "request_id": request_id,
        "method": method,
        "path": path,
        "status": response.status,
        "duration_ms": round(duration_ms, 1),
        **response.facts,
        **extra,
    }
    if response.status >= 400:
        fields["error"] = str(response.body.get("message", ""))
    for name in SCRUBBED:
        if name in fields:
            fields[name] = scrub(str(fields[name]))[-TRACEBACK_CHARS:] if name == "traceback" \
                else scrub(str(fields[name]))[:ERROR_CHARS]
    (logger.error if response.status >= 500 else logger.info)("request", extra=fields)
