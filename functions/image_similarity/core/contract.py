"""Request validation against the OpenAPI document (`openapi.json`), the one source of truth for the API.

The schema decides what is accepted; `explain` only turns a rejection into a message a person can act on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from image_similarity.core.errors import bad_request, reason

OPENAPI_PATH = Path(__file__).resolve().parents[1] / "openapi.json"
SINGLE_SLOTS = (("url", "img"),)
PAIR_SLOTS = (("url_1", "img_1"), ("url_2", "img_2"))
HOW_TO = 'send {"url": ...} or {"img": ...} for one image, or url_1/img_1 and url_2/img_2 for two'
# The one list of URL schemes the API fetches; `sources` dispatches on the same names.
URL_SCHEMES = ("http", "https", "s3")
URL_FORM = "an http://, https:// or s3:// URL"
# A request has at most two fields of two strings each: 8 quote characters, and neither base64 nor a URL holds one.
# Counting them is a memchr over the body; parsing 400,000 unknown keys took over a second before its 400.
MAX_QUOTES = 64
# Field names are the caller's text: messages quote a few, cut short.
QUOTED_NAMES, QUOTED_NAME_CHARS = 5, 40


@dataclass(frozen=True)
class ImageRequest:
    """A validated request: one (field, value) per image, in order. One image: embedding; two: similarity."""

    images: tuple[tuple[str, str], ...]

    @property
    def is_pair(self) -> bool:
        return len(self.images) == 2


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    return json.loads(OPENAPI_PATH.read_text())


@lru_cache(maxsize=1)
def request_validator() -> jsonschema.protocols.Validator:
    doc = openapi_document()
    schema = {"$ref": "#/components/schemas/ImageSimilarityRequest", "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema)


def parse_request(body: bytes | str) -> ImageRequest:
    if (body.count(b'"') if isinstance(body, bytes) else body.count('"')) > MAX_QUOTES:
        raise bad_request(f"the request body holds far more strings than a request has; {HOW_TO}")
    try:
        payload = json.loads(body)
    except RecursionError as exc:
        raise bad_request(f"the request body is nested too deeply to be a request; {HOW_TO}") from exc
    except json.JSONDecodeError as exc:  # its text names a position, never the body's content
        raise bad_request(f"the request body is not valid JSON ({exc.msg} at character {exc.pos}); {HOW_TO}") from exc
    except ValueError as exc:  # bytes that are not UTF-8
        raise bad_request(f"the request body is not valid JSON ({reason(exc)}); {HOW_TO}") from exc
    validator = request_validator()
    if not validator.is_valid(stand_in := _cut_long_strings(payload)):
        raise bad_request(explain(payload) or _first_schema_error(validator, stand_in))
    slots = PAIR_SLOTS if any(name.endswith("_1") for name in payload) else SINGLE_SLOTS
    return ImageRequest(tuple(next((f, payload[f]) for f in slot if f in payload) for slot in slots))


@lru_cache(maxsize=1)
def _longest_checked_string() -> int:
    """The largest `maxLength` in the document: beyond it, a string's length changes no verdict."""
    def limits(node: Any) -> Iterator[int]:
        if isinstance(node, dict):
            if isinstance(node.get("maxLength"), int):
                yield node["maxLength"]
            for value in node.values():
                yield from limits(value)
        elif isinstance(node, list):
            for value in node:
                yield from limits(value)

    return max(limits(openapi_document()["components"]), default=0)


def _cut_long_strings(payload: Any) -> Any:
    """The payload with its top-level strings cut to one character over the longest `maxLength`: the schema's verdict
    is the same (its patterns are anchored at the start), but validating megabytes of base64 is not. jsonschema's
    `oneOf` puts repr(instance) into each failing branch's message: two copies of the whole body per request, held by
    the errors' reference cycles until the cyclic GC runs, which grew the service's resident memory (bench-perf)."""
    if not isinstance(payload, dict):
        return payload
    cut = _longest_checked_string() + 1
    return {name: value[:cut] if isinstance(value, str) else value for name, value in payload.items()}


def explain(payload: Any) -> str | None:
    """A specific message for the usual mistakes; None to fall back on the schema's own words."""
    if not isinstance(payload, dict):
        return f"the request body must be a JSON object; {HOW_TO}"
    fields = set(payload)
    known = {f for slot in SINGLE_SLOTS + PAIR_SLOTS for f in slot}
    if unknown := sorted(fields - known):
        return f"unknown field(s) {_quote_names(unknown)}; {HOW_TO}"
    single = fields & set(SINGLE_SLOTS[0])
    pair = fields - single
    if single and pair:
        return f"fields {_quote_names(sorted(fields))} mix the one-image and two-image modes; {HOW_TO}"
    if not fields:
        return f"the request body is empty; {HOW_TO}"
    for slot in PAIR_SLOTS if pair else SINGLE_SLOTS:
        given = [f for f in slot if f in payload]
        if len(given) == 2:
            return f"give either `{slot[0]}` or `{slot[1]}`, not both"
        if not given:
            return f"missing `{slot[0]}` or `{slot[1]}`: the two-image mode needs both images"
        name = given[0]
        value = payload[name]
        if not isinstance(value, str):
            return f"`{name}` must be a string"
        if not value:
            return f"`{name}` is empty"
        if name.startswith("url") and value.split(":", 1)[0].lower() not in URL_SCHEMES:
            return f"`{name}` must be {URL_FORM}"
    return None


def _first_schema_error(validator: jsonschema.protocols.Validator, payload: Any) -> str:
    """Says which rule failed where, never the value: jsonschema's own message quotes it, and a URL's query string
    can hold credentials."""
    error = jsonschema.exceptions.best_match(validator.iter_errors(payload))
    where = _quote_names(str(p) for p in error.absolute_path) or "body"
    if error.validator == "maxLength":
        return f"invalid request: {where} is longer than {error.validator_value} characters"
    return f"invalid request: {where} does not satisfy the schema's `{error.validator}` rule; {HOW_TO}"


def _quote_names(names: Iterator[str] | list[str]) -> str:
    names = list(names)
    quoted = ", ".join(repr(name[:QUOTED_NAME_CHARS]) for name in names[:QUOTED_NAMES])
    return quoted + (f" and {len(names) - QUOTED_NAMES} more" if len(names) > QUOTED_NAMES else "")
