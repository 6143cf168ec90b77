"""The one exception type the core raises for requests it cannot serve, and the messages written in more than one
place; adapters turn a RequestError into a 4xx JSON answer."""

from __future__ import annotations

import re

from image_similarity.core.settings import MAX_BODY_BYTES

# Library messages may name an object by its heap address (`<_io.BytesIO object at 0x7f...>`) or quote bytes a
# remote host sent (an SSH banner): neither belongs in an answer.
HEAP_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")
REASON_CHARS = 200


class RequestError(Exception):
    """A client-side problem: `status` is the HTTP status (4xx), `message` says what is wrong and how to fix it;
    `detail`, for the request log only, says what happened when the message may not (how a fetch failed)."""

    def __init__(self, status: int, message: str, detail: str = ""):
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


def bad_request(message: str) -> RequestError:
    return RequestError(400, message)


def unusable_image(message: str, detail: str = "") -> RequestError:
    """The request is well-formed but the image it names cannot be fetched or decoded."""
    return RequestError(422, message, detail)


def body_too_large() -> RequestError:
    return RequestError(413, f"the request body is larger than {MAX_BODY_BYTES} bytes; send a URL instead")


def bucket_not_allowed(bucket: str) -> RequestError:
    """`bucket` has passed S3's naming rules, so it is safe to quote."""
    return RequestError(403, f"bucket {bucket!r} is not in this deployment's allowed S3 buckets")


def s3_urls_off(parameter: str) -> RequestError:
    """A deployment that names no bucket reads none (its role has no S3 access): say which parameter opens them."""
    return RequestError(
        403, f"s3:// URLs are off in this deployment: name the buckets it may read in its {parameter} parameter"
    )


def fetch_slots_busy() -> RequestError:
    return RequestError(429, "too many image URLs are being fetched at once; retry shortly or send `img`")


def reason(exc: BaseException) -> str:
    """A library exception's text, short, printable and without heap addresses, for a message or the log."""
    text = UNPRINTABLE.sub(" ", HEAP_ADDRESS.sub("", str(exc))).strip() or type(exc).__name__
    return text[:REASON_CHARS]
