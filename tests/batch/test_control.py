"""`batch start|status|stop` and `BatchJobs` against botocore's Stubber: the state machine from the stack output,
the execution input, progress from DescribeMapRun, stopping, and AWS errors as messages."""

from __future__ import annotations

import datetime
import json

import boto3
import pytest
from botocore.stub import ANY, Stubber
from image_similarity.adapters import cli
from image_similarity.adapters.cli import batch as batch_cli
from image_similarity.batch.control import BatchControlError, BatchJobs, BatchProgress, execution_input
from image_similarity.batch.locations import BatchInputError

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:BatchEmbedding"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:BatchEmbedding:embed-1"
MAP_RUN = "arn:aws:states:us-east-1:123456789012:mapRun:BatchEmbedding/embed-1:0123"
NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)


@pytest.fixture
def clients(aws_env):
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    with Stubber(sfn) as sfn_stub, Stubber(cfn) as cfn_stub:
        yield BatchJobs(sfn, cfn), sfn_stub, cfn_stub
        sfn_stub.assert_no_pending_responses()
        cfn_stub.assert_no_pending_responses()


def stack_outputs(cfn_stub, outputs: dict[str, str]) -> None:
    cfn_stub.add_response(
        "describe_stacks",
        {"Stacks": [{"StackName": "images", "CreationTime": NOW, "StackStatus": "UPDATE_COMPLETE",
                     "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]}]},
        {"StackName": "images"},
    )


def execution(sfn_stub, status: str, **extra) -> None:
    sfn_stub.add_response(
        "describe_execution",
        {"executionArn": EXECUTION, "stateMachineArn": MACHINE, "status": status, "startDate": NOW, **extra},
        {"executionArn": EXECUTION},
    )


def map_run(sfn_stub, **counts: int) -> None:
    sfn_stub.add_response(
        "list_map_runs",
        {"mapRuns": [{"executionArn": EXECUTION, "mapRunArn": MAP_RUN, "stateMachineArn": MACHINE, "startDate": NOW}]},
        {"executionArn": EXECUTION},
    )
    full = {"pending": 0, "running": 0, "succeeded": 0, "failed": 0, "timedOut": 0, "aborted": 0, "total": 0,
            "resultsWritten": 0, **counts}
    sfn_stub.add_response(
        "describe_map_run",
        {"mapRunArn": MAP_RUN, "executionArn": EXECUTION, "status": "RUNNING", "startDate": NOW, "maxConcurrency": 40,
         "toleratedFailurePercentage": 5.0, "toleratedFailureCount": 0, "itemCounts": full, "executionCounts": full},
        {"mapRunArn": MAP_RUN},
    )


def test_start_finds_the_state_machine_and_sends_the_run_input(clients):
    jobs, sfn_stub, cfn_stub = clients
    stack_outputs(cfn_stub, {"ImageSimilarity": "https://x", "BatchEmbeddingStateMachineArn": MACHINE})
    expected_input = {"input_bucket": "images-in", "input_prefix": "photos/2024/", "output_bucket": "vectors-out",
                      "output_prefix": "vectors", "max_concurrency": 20, "tolerated_failure_percentage": 2.5}
    sfn_stub.add_response(
        "start_execution",
        {"executionArn": EXECUTION, "startDate": NOW},
        {"stateMachineArn": MACHINE, "name": "embed-1", "input": json.dumps(expected_input)},
    )
    arn = jobs.start("images", "s3://images-in/photos/2024/", "s3://vectors-out/vectors/", name="embed-1",
                     max_concurrency=20, tolerated_failure_percentage=2.5)
    assert arn == EXECUTION


def test_start_names_runs_itself_and_leaves_defaults_to_the_state_machine(clients):
    jobs, sfn_stub, cfn_stub = clients
    stack_outputs(cfn_stub, {"BatchEmbeddingStateMachineArn": MACHINE})
    sfn_stub.add_response("start_execution", {"executionArn": EXECUTION, "startDate": NOW},
                          {"stateMachineArn": MACHINE, "name": ANY, "input": ANY})
    assert jobs.start("images", "s3://images-in/", "s3://vectors-out/") == EXECUTION
    manifest = "s3://inventory-reports/images-in/all/2026-12-01T01-00Z/manifest.json"
    assert execution_input("s3://images-in/", "s3://vectors-out/", inventory_manifest=manifest)[
        "inventory_manifest"] == manifest
    assert execution_input("s3://images-in/", "s3://vectors-out/") == {"input_bucket": "images-in", "input_prefix": "",
                                                         "output_bucket": "vectors-out", "output_prefix": ""}


def test_a_stack_without_batch_embedding_is_refused_with_the_fix(clients):
    jobs, _, cfn_stub = clients
    stack_outputs(cfn_stub, {"ImageSimilarity": "https://x"})
    with pytest.raises(BatchInputError, match="BatchEmbedding=yes"):
        jobs.start("images", "s3://images-in/", "s3://vectors-out/")


def test_progress_counts_the_map_runs_items(clients):
    jobs, sfn_stub, _ = clients
    execution(sfn_stub, "RUNNING")
    map_run(sfn_stub, total=1000, succeeded=600, failed=3, timedOut=1, running=40, pending=356)
    progress = jobs.progress(EXECUTION)
    assert progress == BatchProgress(EXECUTION, "RUNNING", total=1000, succeeded=600, failed=4, running=40,
                                     pending=356)
    assert not progress.finished


def test_progress_before_the_map_run_exists(clients):
    jobs, sfn_stub, _ = clients
    execution(sfn_stub, "FAILED", error="States.ItemReaderFailed")
    sfn_stub.add_response("list_map_runs", {"mapRuns": []}, {"executionArn": EXECUTION})
    progress = jobs.progress(EXECUTION)
    assert progress.finished and progress.total == 0 and progress.error == "States.ItemReaderFailed"


def test_wait_polls_until_the_run_ends(clients):
    jobs, sfn_stub, _ = clients
    execution(sfn_stub, "RUNNING")
    map_run(sfn_stub, total=10, succeeded=4, running=6)
    execution(sfn_stub, "SUCCEEDED")
    map_run(sfn_stub, total=10, succeeded=10)
    seen, naps = [], []
    final = jobs.wait(EXECUTION, seen.append, interval=7, sleep=naps.append)
    assert [p.succeeded for p in seen] == [4, 10] and naps == [7] and final.status == "SUCCEEDED"


def test_stop(clients):
    jobs, sfn_stub, _ = clients
    sfn_stub.add_response("stop_execution", {"stopDate": NOW}, {"executionArn": EXECUTION, "cause": ANY})
    jobs.stop(EXECUTION)


def test_aws_errors_become_messages(clients):
    jobs, sfn_stub, _ = clients
    sfn_stub.add_client_error("describe_execution", "ExecutionDoesNotExist", "Execution Does Not Exist: 'arn...'")
    with pytest.raises(BatchControlError, match="ExecutionDoesNotExist"):
        jobs.progress(EXECUTION)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: execution_input("images-in/photos", "s3://vectors-out/"), "not an S3 location"),
        (lambda: execution_input("s3://images-in/", "s3://vectors-out/", max_concurrency=0), "at least 1"),
        (lambda: execution_input("s3://images-in/", "s3://vectors-out/", tolerated_failure_percentage=101),
         "between 0 and 100"),
        (lambda: execution_input("s3://images-in/", "s3://vectors-out/", inventory_manifest="s3://inv/x.csv"),
         "manifest.json"),
        (lambda: BatchJobs(object(), object()).stop("embed-1"), "not a Step Functions execution ARN"),
    ],
)
def test_bad_arguments_are_refused_before_any_call(call, words):
    with pytest.raises(BatchInputError, match=words):
        call()


def test_cli_start_shows_progress_and_exits_0_on_success(clients, monkeypatch, capsys):
    jobs, sfn_stub, cfn_stub = clients
    monkeypatch.setattr(batch_cli, "BatchJobs", lambda: jobs)
    monkeypatch.setattr(jobs, "wait", lambda arn, on_poll: _finish(jobs, arn, on_poll))
    stack_outputs(cfn_stub, {"BatchEmbeddingStateMachineArn": MACHINE})
    sfn_stub.add_response("start_execution", {"executionArn": EXECUTION, "startDate": NOW},
                          {"stateMachineArn": MACHINE, "name": ANY, "input": ANY})
    execution(sfn_stub, "SUCCEEDED")
    map_run(sfn_stub, total=12, succeeded=12)
    assert cli.main(["batch", "start", "s3://images-in/p/", "s3://vectors-out/q/", "--stack", "images"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == EXECUTION and json.loads(out[-1])["succeeded"] == 12


def _finish(jobs: BatchJobs, arn: str, on_poll) -> BatchProgress:
    progress = jobs.progress(arn)
    on_poll(progress)
    return progress


def test_cli_status_and_stop(clients, monkeypatch, capsys):
    jobs, sfn_stub, _ = clients
    monkeypatch.setattr(batch_cli, "BatchJobs", lambda: jobs)
    execution(sfn_stub, "FAILED", error="States.ExceedToleratedFailureThreshold")
    map_run(sfn_stub, total=100, succeeded=80, failed=20)
    assert cli.main(["batch", "status", EXECUTION]) == 1
    status = json.loads(capsys.readouterr().out)
    assert (status["status"], status["failed"], status["error"]) == (
        "FAILED", 20, "States.ExceedToleratedFailureThreshold"
    )
    sfn_stub.add_response("stop_execution", {"stopDate": NOW}, {"executionArn": EXECUTION, "cause": ANY})
    assert cli.main(["batch", "stop", EXECUTION]) == 0


def test_cli_reports_aws_errors_without_a_traceback(clients, monkeypatch, capsys):
    jobs, _, cfn_stub = clients
    monkeypatch.setattr(batch_cli, "BatchJobs", lambda: jobs)
    cfn_stub.add_client_error("describe_stacks", "ValidationError", "Stack with id nope does not exist")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["batch", "start", "s3://images-in/", "s3://vectors-out/", "--stack", "nope"])
    assert exit_.value.code == 2 and "Stack with id nope does not exist" in capsys.readouterr().err


def test_no_region_is_a_message_not_a_traceback(aws_env, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(BatchControlError, match="AWS_REGION"):
        BatchJobs()
