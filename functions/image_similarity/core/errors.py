"""The one exception type the core raises for requests it cannot serve; adapters turn it into a 4xx JSON answer."""

from __future__ import annotations


class RequestError(Exception):
    """A client-side problem: `status` is the HTTP status (4xx), `message` says what is wrong and how to fix it."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> RequestError:
    return RequestError(400, message)


def unusable_image(message: str) -> RequestError:
    """The request is well-formed but the image it names cannot be fetched or decoded."""
    return RequestError(422, message)
