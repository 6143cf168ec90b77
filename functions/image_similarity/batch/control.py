"""Start, watch and stop a batch embedding run of a deployed stack (its `BatchEmbedding` nested stack).

The state machine is found from the root stack's `BatchEmbeddingStateMachineArn` output. Progress comes from the
execution's Distributed Map run: DescribeMapRun counts the items (images) pending, running, succeeded and failed.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from image_similarity.batch.locations import BatchInputError, parse_s3_prefix

STATE_MACHINE_OUTPUT = "BatchEmbeddingStateMachineArn"
FINISHED = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
EXECUTION_ARN = re.compile(r"^arn:[a-z-]+:states:[a-z0-9-]+:\d{12}:execution:[^:]+:[^:]+$")


class BatchControlError(RuntimeError):
    """AWS refused a call (no such stack or execution, no permission, no credentials): its message, no traceback."""


@dataclass(frozen=True)
class BatchProgress:
    """One look at a run: the execution's status and, once its map run exists, the item counts."""

    execution_arn: str
    status: str
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    running: int = 0
    pending: int = 0
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def execution_input(
    input_url: str,
    output_url: str,
    *,
    max_concurrency: int | None = None,
    tolerated_failure_percentage: float | None = None,
    inventory_manifest: str | None = None,
) -> dict[str, Any]:
    """The state machine's input (infra/batch.py); settings left out take the state machine's defaults.
    `inventory_manifest` (s3://.../manifest.json of an S3 Inventory report of the input bucket) replaces listing
    the prefix: for buckets with tens of millions of objects."""
    input_bucket, input_prefix = parse_s3_prefix(input_url)
    output_bucket, output_prefix = parse_s3_prefix(output_url)
    body: dict[str, Any] = {
        "input_bucket": input_bucket,
        "input_prefix": input_prefix,
        "output_bucket": output_bucket,
        "output_prefix": output_prefix.strip("/"),
    }
    if max_concurrency is not None:
        if max_concurrency < 1:
            raise BatchInputError("the maximum concurrency must be at least 1")
        body["max_concurrency"] = max_concurrency
    if tolerated_failure_percentage is not None:
        if not 0 <= tolerated_failure_percentage <= 100:
            raise BatchInputError("the tolerated failure percentage must be between 0 and 100")
        body["tolerated_failure_percentage"] = tolerated_failure_percentage
    if inventory_manifest is not None:
        _, manifest_key = parse_s3_prefix(inventory_manifest)
        if not manifest_key.endswith("manifest.json"):
            raise BatchInputError("the inventory manifest is the report's s3://bucket/.../manifest.json")
        body["inventory_manifest"] = inventory_manifest
    return body


class BatchJobs:
    """`start` a run, `progress` of a run, `wait` for it with a callback per poll, `stop` it."""

    def __init__(self, stepfunctions: Any = None, cloudformation: Any = None):
        if stepfunctions is None or cloudformation is None:
            import boto3
            from botocore.exceptions import BotoCoreError

            try:
                stepfunctions = stepfunctions or boto3.client("stepfunctions")
                cloudformation = cloudformation or boto3.client("cloudformation")
            except BotoCoreError as exc:  # e.g. no region configured
                raise BatchControlError(f"{exc} (set AWS_REGION or a profile's region)") from exc
        self.stepfunctions = stepfunctions
        self.cloudformation = cloudformation

    def state_machine_arn(self, stack_name: str) -> str:
        (stack,) = _aws(self.cloudformation.describe_stacks, StackName=stack_name)["Stacks"]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if STATE_MACHINE_OUTPUT not in outputs:
            raise BatchInputError(
                f"stack {stack_name} has no {STATE_MACHINE_OUTPUT} output: deploy it with BatchEmbedding=yes"
            )
        return outputs[STATE_MACHINE_OUTPUT]

    def start(self, stack_name: str, input_url: str, output_url: str, *, name: str | None = None,
              **settings: Any) -> str:
        """Start a run; returns its execution ARN (what `progress`, `wait` and `stop` take)."""
        body = execution_input(input_url, output_url, **settings)
        answer = _aws(
            self.stepfunctions.start_execution,
            stateMachineArn=self.state_machine_arn(stack_name),
            name=name or f"embed-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}",
            input=json.dumps(body),
        )
        return answer["executionArn"]

    def progress(self, execution_arn: str) -> BatchProgress:
        _check_arn(execution_arn)
        execution = _aws(self.stepfunctions.describe_execution, executionArn=execution_arn)
        status = execution["status"]
        error = execution.get("error")
        map_runs = _aws(self.stepfunctions.list_map_runs, executionArn=execution_arn).get("mapRuns", [])
        if not map_runs:  # the item reader has not started yet (or the run failed before it)
            return BatchProgress(execution_arn, status, error=error)
        counts = _aws(self.stepfunctions.describe_map_run, mapRunArn=map_runs[0]["mapRunArn"])["itemCounts"]
        return BatchProgress(
            execution_arn,
            status,
            total=counts.get("total", 0),
            succeeded=counts.get("succeeded", 0),
            failed=counts.get("failed", 0) + counts.get("timedOut", 0) + counts.get("aborted", 0),
            running=counts.get("running", 0),
            pending=counts.get("pending", 0),
            error=error,
        )

    def wait(self, execution_arn: str, on_poll: Callable[[BatchProgress], None] | None = None,
             interval: float = 5.0, sleep: Callable[[float], None] = time.sleep) -> BatchProgress:
        while True:
            progress = self.progress(execution_arn)
            if on_poll:
                on_poll(progress)
            if progress.finished:
                return progress
            sleep(interval)

    def stop(self, execution_arn: str) -> None:
        _check_arn(execution_arn)
        _aws(
            self.stepfunctions.stop_execution,
            executionArn=execution_arn,
            cause="stopped by image-similarity batch stop",
        )


def _check_arn(execution_arn: str) -> None:
    if not EXECUTION_ARN.match(execution_arn):
        raise BatchInputError(f"{execution_arn!r} is not a Step Functions execution ARN (arn:aws:states:...)")


def _aws(call: Callable[..., dict[str, Any]], **params: Any) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call(**params)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise BatchControlError(f"{error.get('Code', 'error')}: {error.get('Message', '')}") from exc
    except BotoCoreError as exc:
        raise BatchControlError(str(exc)) from exc
