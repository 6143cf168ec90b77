"""The SageMaker integration's error mapping template, rendered by a Velocity engine (airspeed, the one LocalStack
uses for API Gateway) with API Gateway's $input, $util and $context stood in for: what a client gets for each kind of
SageMaker answer (issue 14, defect 1). What real API Gateway does is checked by hand after a deployment
(docs/DEPLOYMENT.md)."""

from __future__ import annotations

import json
import re

import airspeed
import pytest

from infra.sagemaker_backend import INTEGRATION_RESPONSES


class _Input:
    """$input for a JSON body: path('$.a.b') as API Gateway evaluates simple JSONPath expressions."""

    def __init__(self, body: str) -> None:
        self._body = json.loads(body)

    def path(self, expression: str):
        value = self._body
        for part in expression.removeprefix("$").strip(".").split(".") if expression != "$" else []:
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value


class _Util:
    def escapeJavaScript(self, text) -> str:  # API Gateway's name for it
        return json.dumps(str(text))[1:-1]


def _respond(sagemaker_status: int, body: dict) -> tuple[int, dict]:
    """The status and JSON body a client gets when SageMaker answers `sagemaker_status` with `body`."""
    (response,) = [
        r
        for r in INTEGRATION_RESPONSES
        if "SelectionPattern" in r and re.fullmatch(r["SelectionPattern"], str(sagemaker_status))
    ]
    context: dict = {"responseOverride": {}}
    rendered = airspeed.Template(response["ResponseTemplates"]["application/json"]).merge(
        {"input": _Input(json.dumps(body)), "util": _Util(), "context": context}
    )
    status = context["responseOverride"].get("status", int(response["StatusCode"]))
    return int(status), json.loads(rendered)


@pytest.mark.parametrize("container_status", [400, 403, 413, 415, 422])
def test_a_container_4xx_reaches_the_client_with_its_status_and_body(container_status):
    message = {"message": "img is not a JPEG, PNG or BMP image"}
    model_error = {
        "ErrorCode": "CLIENT_ERROR_FROM_MODEL",
        "OriginalStatusCode": container_status,
        "OriginalMessage": json.dumps(message),
        "Message": "Received client error from primary with message ...",
    }
    assert _respond(424, model_error) == (container_status, message)


def test_a_container_5xx_is_a_502_with_a_message():
    status, body = _respond(424, {"OriginalStatusCode": 500, "OriginalMessage": "Traceback (most recent call last)"})
    assert status == 502 and "Traceback" not in body["message"] and body["message"]


def test_sagemakers_own_4xx_is_a_400_with_its_reason():
    status, body = _respond(400, {"message": "Received client error (400) from model: payload is empty"})
    assert status == 400 and body["message"].endswith("payload is empty")


def test_sagemaker_unavailable_is_a_502():
    status, body = _respond(503, {"message": "ServiceUnavailable"})
    assert status == 502 and "unavailable" in body["message"]
