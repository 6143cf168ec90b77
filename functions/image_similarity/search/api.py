"""The collection routes as core logic: (method, path, body) in, a `Response` out. No web framework, no event shapes.

    POST   /collections/{name}/items       add or replace 1-500 items (`url`, `img` or `vector` each)
    POST   /collections/{name}/search      the k best matches of one image or vector
    GET    /collections/{name}             name, count, model version
    DELETE /collections/{name}/items/{id}  one item
    DELETE /collections/{name}             the whole collection

Requests are validated against `openapi.json`, the one contract; the only rules checked in code are the ones JSON
Schema cannot say (a vector's values finite and not all zero, metadata's size in bytes), and they read their numbers
from the document too. Images go through the same source and embedder as `POST /image-similarity`.
"""

from __future__ import annotations

import json
import math
import re
import traceback
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonschema
import numpy as np

from image_similarity.core.contract import openapi_document
from image_similarity.core.errors import RequestError, bad_request
from image_similarity.core.service import ImageSimilarityService, Response
from image_similarity.core.settings import MAX_BODY_BYTES
from image_similarity.search.store import CollectionStore

PREFIX = "/collections/"
IMAGE_FIELDS = ("url", "img", "vector")
# Images embedded per model call while adding many (the CLI's batch size).
EMBED_BATCH = 32


@dataclass(frozen=True)
class Route:
    """Which operation a path names: `template` is what the request log records (never the item's id)."""

    template: str
    name: str
    item_id: str | None = None


def match(path: str) -> Route | None:
    """The route of a path under /collections/, or None for any other path (the caller answers those)."""
    if not path.startswith(PREFIX):
        return None
    name, _, tail = path[len(PREFIX):].partition("/")
    if tail in ("", "items", "search"):
        return Route(PREFIX + "{name}" + (f"/{tail}" if tail else ""), name)
    if tail.startswith("items/") and len(tail) > len("items/"):
        return Route(PREFIX + "{name}/items/{id}", name, tail[len("items/"):])
    return Route(PREFIX + "{name}/" + "…", name)


METHODS = {
    "/collections/{name}": ("GET", "DELETE"),
    "/collections/{name}/items": ("POST",),
    "/collections/{name}/search": ("POST",),
    "/collections/{name}/items/{id}": ("DELETE",),
}


class CollectionRoutes:
    """The five operations over one store, embedding images with the service's model."""

    def __init__(self, service: ImageSimilarityService, store: CollectionStore):
        self.service = service
        self.store = store

    def handle(self, method: str, path: str, body: bytes | str | None) -> Response:
        """`path` is percent-decoded (an id may hold '/'); `match(path)` must not be None."""
        route = match(path)
        assert route is not None, "only paths under /collections/ come here"
        try:
            return Response(200, self._answer(method, route, body))
        except RequestError as exc:
            return Response(exc.status, {"message": exc.message})
        except Exception:  # a fault of ours (store, model): tell the client nothing internal
            # The traceback rides on the request's one log line, scrubbed there like every 500's (core.request_log).
            return Response(500, {"message": "internal error: the service could not process the request"},
                            {"traceback": traceback.format_exc()})

    def _answer(self, method: str, route: Route, body: bytes | str | None) -> dict[str, Any]:
        allowed = METHODS.get(route.template)
        if allowed is None:
            raise RequestError(404, f"no such path; the collection routes are {', '.join(METHODS)}")
        if method not in allowed:
            raise RequestError(405, f"use {' or '.join(allowed)} on {route.template}")
        check_name(route.name)
        if route.template.endswith("/items"):
            return self._add(route.name, parse(body, "AddItemsRequest"))
        if route.template.endswith("/search"):
            return self._search(route.name, parse(body, "SearchRequest"))
        if route.item_id is not None:
            check_item_id(route.item_id)
            self.store.delete_item(route.name, route.item_id)
            return {"deleted": route.item_id}
        if method == "DELETE":
            self.store.delete_collection(route.name)
            return {"deleted": route.name}
        info = self.store.describe(route.name)
        return {"name": info.name, "count": info.count, "model_version": info.model_version}

    def _add(self, name: str, request: dict[str, Any]) -> dict[str, Any]:
        version = self._version(request)
        items = request["items"]
        for row, item in enumerate(items):
            check_metadata(item.get("metadata", {}), f"items/{row}/metadata")
        vectors = self._vectors(items, "items/{row}")
        added = self.store.upsert(name, [item["id"] for item in items], vectors,
                                  [item.get("metadata", {}) for item in items], version)
        return {"added": added, "model_version": version}

    def _search(self, name: str, request: dict[str, Any]) -> dict[str, Any]:
        version = self._version(request)
        vector = self._vectors([request], "body")[0]
        defaults = _rules()["search_defaults"]
        matches = self.store.search(name, vector, request.get("k", defaults["k"]),
                                    request.get("min_similarity", defaults["min_similarity"]), version)
        return {"matches": [{"id": m.id, "similarity": round(m.similarity, 6), "metadata": m.metadata}
                            for m in matches], "model_version": version}

    def _version(self, request: dict[str, Any]) -> str:
        """The vectors' model: the one given, else the service's. Images are always embedded with the service's,
        so naming another version beside an image is a contradiction."""
        given = request.get("model_version", self.service.model_version)
        has_image = any("url" in item or "img" in item for item in request.get("items", [request]))
        if given != self.service.model_version and has_image:
            raise RequestError(409, f"images are embedded with this service's model {self.service.model_version}, "
                                    f"not {given}: send vectors of {given}, or leave out `model_version`")
        return given

    def _vectors(self, items: list[dict[str, Any]], where: str) -> np.ndarray:
        """One unit row per item: given vectors normalised, images read and embedded in batches."""
        dim = self.service.embedder.info.dim
        rows = np.zeros((len(items), dim), np.float32)
        images: list[tuple[int, bytes]] = []
        for row, item in enumerate(items):
            at = where.format(row=row)
            if "vector" in item:
                rows[row] = unit_vector(item["vector"], f"{at}/vector", dim)
            else:
                field = "url" if "url" in item else "img"
                try:
                    images.append((row, self.service.source.read(field, item[field])))
                except RequestError as exc:
                    raise RequestError(exc.status, f"{at}: {exc.message}") from exc
        for start in range(0, len(images), EMBED_BATCH):
            batch = images[start:start + EMBED_BATCH]
            rows[[row for row, _ in batch]] = self._embed(batch, where)
        return rows

    def _embed(self, batch: list[tuple[int, bytes]], where: str) -> np.ndarray:
        try:
            return self.service.embed_images([data for _, data in batch])
        except RequestError as exc:
            if len(batch) == 1:
                raise RequestError(exc.status, f"{where.format(row=batch[0][0])}: {exc.message}") from exc
            return np.concatenate([self._embed([one], where) for one in batch])  # find which image it was


# -- validation ---------------------------------------------------------------------------------------------------


def parse(body: bytes | str | None, schema: str) -> dict[str, Any]:
    if body is None or len(body) == 0:
        raise bad_request("the request body is empty: send a JSON object (see /api-explorer/)")
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(413, f"the request body is larger than {MAX_BODY_BYTES} bytes; "
                                "send fewer items per request, or images by URL")
    try:
        payload = json.loads(body, parse_constant=_no_constants)
    except RecursionError as exc:
        raise bad_request("the request body is nested too deeply") from exc
    except ValueError as exc:
        raise bad_request(f"the request body is not valid JSON ({str(exc)[:200]})") from exc
    validator = _validator(schema)
    stand_in = _without_vectors(payload)
    if not validator.is_valid(stand_in):
        raise bad_request(_first_error(validator, stand_in))
    return payload


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows; vectors must be finite")


def _without_vectors(payload: Any) -> Any:
    """`vector` fields swapped for a marker: the schema's verdict on the rest is the same, and `unit_vector` checks
    them against the document's own rule in a fraction of the time (jsonschema takes seconds over 500 vectors)."""
    if not isinstance(payload, dict):
        return payload
    swapped = {key: ("<vector>" if key == "vector" else value) for key, value in payload.items()}
    if isinstance(swapped.get("items"), list):
        swapped["items"] = [_without_vectors(item) for item in swapped["items"]]
    return swapped


@lru_cache(maxsize=4)
def _validator(schema: str) -> jsonschema.protocols.Validator:
    components = json.loads(json.dumps(openapi_document()["components"]))
    components["schemas"]["CollectionVector"] = {}  # checked by unit_vector, from the same schema
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{schema}", "components": components})


def _first_error(validator: jsonschema.protocols.Validator, payload: Any) -> str:
    error = jsonschema.exceptions.best_match(validator.iter_errors(payload))
    where = "/".join(str(p) for p in error.absolute_path) or "body"
    if error.validator == "oneOf" and isinstance(error.instance, dict):
        given = [f for f in IMAGE_FIELDS if f in error.instance]
        return (f"invalid request ({where}): give exactly one of `url`, `img` and `vector`"
                + (f", not {' and '.join(given)}" if given else ""))
    if error.validator == "additionalProperties":
        return f"invalid request ({where}): {error.message[:200]}"
    return f"invalid request ({where}): {_describe(error)}"


def _describe(error: jsonschema.ValidationError) -> str:
    """The schema's complaint without the instance's repr (a 500-item list would fill the message)."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator in ("minItems", "maxItems") and "items" in schema:
        return f"give {schema.get('minItems', 0)} to {schema.get('maxItems')} items, not {len(error.instance)}"
    if error.validator in ("minimum", "maximum"):
        return f"must be between {schema.get('minimum')} and {schema.get('maximum')}"
    if error.validator == "type":
        return f"must be of type {error.validator_value}"
    return error.message[:200]


@lru_cache(maxsize=1)
def _rules() -> dict[str, Any]:
    doc = openapi_document()["components"]
    return {
        "name": re.compile(doc["parameters"]["CollectionName"]["schema"]["pattern"]),
        "name_text": doc["parameters"]["CollectionName"]["description"],
        "id": doc["schemas"]["ItemId"],
        "vector": doc["schemas"]["CollectionVector"],
        "metadata_bytes": doc["schemas"]["ItemMetadata"]["x-max-bytes"],
        "search_defaults": {key: doc["schemas"]["SearchRequest"]["properties"][key]["default"]
                            for key in ("k", "min_similarity")},
        "k_max": doc["schemas"]["SearchRequest"]["properties"]["k"]["maximum"],
    }


def most_matches() -> int:
    """The largest k a search takes (the contract's)."""
    return _rules()["k_max"]


def check_name(name: str) -> None:
    if not _rules()["name"].match(name):
        raise bad_request(f"invalid collection name {name[:80]!r}: {_rules()['name_text']}")


def check_item_id(item_id: str) -> None:
    rule = _rules()["id"]
    if not rule["minLength"] <= len(item_id) <= rule["maxLength"]:
        raise bad_request(f"an item id has {rule['minLength']} to {rule['maxLength']} characters")


def check_metadata(metadata: dict[str, Any], where: str) -> None:
    limit = _rules()["metadata_bytes"]
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
    if size > limit:
        raise RequestError(413, f"{where} is {size} bytes as JSON; the limit is {limit}: keep large data elsewhere "
                                "and store its key")


def unit_vector(value: Any, where: str, dim: int) -> np.ndarray:
    """The document's CollectionVector rule (length, numbers) plus what JSON Schema cannot say: finite, not zero."""
    rule = _rules()["vector"]
    if not isinstance(value, list) or not rule["minItems"] <= len(value) <= rule["maxItems"]:
        size = f"{len(value)} values" if isinstance(value, list) else f"a {type(value).__name__}"
        raise bad_request(f"{where} must be a list of {rule['maxItems']} numbers (an embedding of this model), "
                          f"not {size}")
    if not all(type(x) in (int, float) for x in value):
        raise bad_request(f"{where} must hold numbers only")
    vector = np.asarray(value, dtype=np.float64)
    if not np.isfinite(vector).all():
        raise bad_request(f"{where} holds a value too large to be an embedding; vectors must be finite")
    largest = float(np.abs(vector).max())
    if largest == 0.0:
        raise bad_request(f"{where} is all zeros: it has no direction to compare")
    vector /= largest  # so the squares below cannot overflow
    norm = math.sqrt(float(vector @ vector))
    if len(value) != dim:
        raise bad_request(f"{where} has {len(value)} values; this model's embeddings have {dim}")
    return (vector / norm).astype(np.float32)
