"""The BatchEmbedding nested stack: when it exists, its state machine's definition, its IAM scope, logs and lint.

The state machine's JSONata expressions (input validation, settings, run manifest) are evaluated with a JSONata
implementation, so the tests check what Step Functions will compute, not only what the template says.
"""

from __future__ import annotations

import json
import re

import jsonata
import pytest
from cfn_matrix import PSEUDO_PARAMETERS, Deployment
from cfnlint.api import ManualArgs, lint_file

from infra.batch import BATCH_HANDLER, FUNCTION_MEMORY_MB, FUNCTION_TIMEOUT, RETRY_ATTEMPTS
from infra.batch_run import (
    BYTES_PER_BATCH,
    DEFAULTS,
    INPUT_RULES,
    INVENTORY_MAP,
    ITEMS_PER_BATCH,
    MAP_LABELS,
    PREFIX_MAP,
    RUN_MANIFEST,
    SETTINGS,
    VALID_INPUT,
)

# The Lambda's event contract with the worker (functions/image_similarity/adapters/batch_lambda.py).
BATCH_INPUT_KEYS = {"input_bucket", "output_bucket", "output_prefix", "execution_name"}
EXPRESS_LIMIT_SECONDS = 5 * 60
OUTPUT_BUCKET = "vectors"  # stands for the BatchOutputBucket parameter in the definition
ON = {"BatchEmbedding": "yes", "BatchOutputBucket": "batch-output", "AllowedS3Buckets": "images-a,images-b"}


@pytest.fixture(scope="module")
def batch(synthesized) -> dict:
    return synthesized.nested_template("BatchEmbeddingStack")


@pytest.fixture(scope="module")
def batch_path(synthesized):
    (path,) = [p for p in synthesized.template_paths if "BatchEmbeddingStack" in p.name]
    return path


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def only(template: dict, kind: str) -> dict:
    (resource,) = resources(template, kind).values()
    return resource


@pytest.fixture(scope="module")
def definition(batch) -> dict:
    """The state machine's definition, with the Fn::Join pieces it is built from replaced by readable names."""
    parts = only(batch, "AWS::StepFunctions::StateMachine")["Properties"]["DefinitionString"]["Fn::Join"][1]
    names = {json.dumps({"Ref": "AWS::Partition"}): "aws", json.dumps({"Ref": "OutputBucket"}): OUTPUT_BUCKET}
    text = ""
    for part in parts:
        if isinstance(part, str):
            text += part
        elif "Fn::GetAtt" in part and part["Fn::GetAtt"][1] == "Arn":
            text += f"<{part['Fn::GetAtt'][0]}>"
        else:
            text += names[json.dumps(part)]
    return json.loads(text)


def evaluate(expression: str, state_input, execution_name: str = "run-1"):
    """Evaluate a Step Functions JSONata field ("{% ... %}") with $states bound as Step Functions binds it."""
    assert expression.startswith("{%") and expression.endswith("%}")
    states = {
        "input": state_input,
        "context": {
            "Execution": {
                "Name": execution_name,
                "Id": f"arn:aws:states:::execution:sm:{execution_name}",
                "StartTime": "2026-12-01T00:00:00Z",
            },
            "StateMachine": {"Id": "arn:aws:states:::stateMachine:sm"},
        },
    }
    return jsonata.Jsonata(expression[2:-2]).evaluate(None, {"states": states})


# -- the feature switch ----------------------------------------------------------------------------------------------
def test_batch_embedding_is_a_feature_that_is_off_by_default(root):
    spec = root["Parameters"]["BatchEmbedding"]
    assert (spec["Default"], spec["AllowedValues"]) == ("no", ["yes", "no"])
    groups = root["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    (features,) = [g["Parameters"] for g in groups if g["Label"]["default"] == "Features"]
    assert "BatchEmbedding" in features


@pytest.mark.parametrize("switch", ["yes", "no"])
def test_the_nested_stack_and_its_output_exist_exactly_when_switched_on(synthesized, switch):
    deployment = Deployment.evaluate(synthesized.root, synthesized.nested, {**ON, "BatchEmbedding": switch})
    batch_stacks = [lid for lid in deployment.nested if lid.startswith("BatchEmbeddingStack")]
    assert len(batch_stacks) == (1 if switch == "yes" else 0)
    assert ("BatchEmbeddingStateMachineArn" in deployment.root.outputs) == (switch == "yes")
    assert deployment.dangling_references() == []


def test_batch_alone_needs_no_api(synthesized):
    alone = {"ImageSimilarity": "no", "APIExplorer": "no", **ON}
    deployment = Deployment.evaluate(synthesized.root, synthesized.nested, alone)
    root_kinds = sorted(kind for (stack, _), (kind, _) in deployment.resources.items() if stack == "root")
    assert root_kinds == [
        "AWS::CDK::Metadata",
        "AWS::CloudFormation::Stack",
        "AWS::CloudFormation::WaitConditionHandle",
    ]
    assert set(deployment.root.outputs) == {"BatchEmbeddingStateMachineArn"}
    assert deployment.dangling_references() == []


def test_the_output_names_the_state_machine_of_the_nested_stack(root):
    value = root["Outputs"]["BatchEmbeddingStateMachineArn"]["Value"]
    (stack_id, attribute) = value["Fn::GetAtt"]
    assert stack_id.startswith("BatchEmbeddingStack") and attribute.startswith("Outputs.")


def test_switching_batch_on_changes_nothing_outside_its_nested_stack(synthesized):
    off = Deployment.evaluate(synthesized.root, synthesized.nested, {**ON, "BatchEmbedding": "no"})
    on = Deployment.evaluate(synthesized.root, synthesized.nested, ON)
    added = set(on.resources) - set(off.resources)
    assert {stack for stack, _ in added} - {"root"} == {next(s for s in on.nested if s.startswith("BatchEmbedding"))}
    assert {on.resources[key][0] for key in added if key[0] == "root"} == {"AWS::CloudFormation::Stack"}
    changed = {key for key in set(on.resources) & set(off.resources) if on.canonical[key] != off.canonical[key]}
    # The stage redeploys on any parameter change (infra/stage.py); nothing else of the API is touched.
    assert {on.resources[key][0] for key in changed} <= {"Custom::ApiGatewayDeployment"}


def test_a_run_needs_an_output_bucket(root):
    rule = root["Rules"]["BatchEmbeddingNeedsOutputBucket"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "BatchEmbedding"}, "yes"]}
    (assertion,) = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "BatchOutputBucket"}, ""]}]}
    assert "BatchOutputBucket" in assertion["AssertDescription"]


# -- the worker function ---------------------------------------------------------------------------------------------
def test_the_worker_is_the_service_image_with_the_batch_command(synthesized, batch):
    worker = only(batch, "AWS::Lambda::Function")["Properties"]
    assert worker["PackageType"] == "Image"
    assert worker["ImageConfig"] == {"Command": [BATCH_HANDLER]}
    assert (worker["MemorySize"], worker["Timeout"]) == (FUNCTION_MEMORY_MB, FUNCTION_TIMEOUT.to_seconds())
    # The very image the API's Lambda backend runs: one build, one push.
    api = only(synthesized.nested_template("LambdaBackend"), "AWS::Lambda::Function")["Properties"]
    assert worker["Code"]["ImageUri"] == api["Code"]["ImageUri"]
    # The same environment as the API function, so the worker obeys AllowedS3Buckets like the API does.
    assert set(worker["Environment"]["Variables"]) == set(api["Environment"]["Variables"])


def test_a_batch_and_its_retries_fit_in_an_express_child_execution(definition):
    for label in MAP_LABELS:
        (task,) = definition["States"][label]["ItemProcessor"]["States"].values()
        (retry,) = task["Retry"]
        attempts = 1 + retry["MaxAttempts"]
        back_off = sum(retry["IntervalSeconds"] * retry["BackoffRate"] ** n for n in range(retry["MaxAttempts"]))
        assert attempts * FUNCTION_TIMEOUT.to_seconds() + back_off < EXPRESS_LIMIT_SECONDS
        assert retry["MaxAttempts"] == RETRY_ATTEMPTS


# -- the state machine definition ------------------------------------------------------------------------------------
def test_both_sources_are_distributed_maps_of_express_batches_to_the_worker(definition, batch):
    (worker_id,) = resources(batch, "AWS::Lambda::Function")
    for label in MAP_LABELS:
        state = definition["States"][label]
        assert state["Type"] == "Map" and state["Label"] == label
        assert state["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}
        (task,) = state["ItemProcessor"]["States"].values()
        assert task["Resource"] == f"<{worker_id}>"  # the batch event goes to the worker as it is
        assert "Parameters" not in task and "Arguments" not in task


def test_the_prefix_map_lists_the_input_prefix(definition):
    reader = definition["States"][PREFIX_MAP]["ItemReader"]
    assert reader["Resource"] == "arn:aws:states:::s3:listObjectsV2"
    assert reader["Parameters"] == {"Bucket.$": "$.input_bucket", "Prefix.$": "$.input_prefix"}


def test_the_inventory_map_reads_an_s3_inventory_manifest(definition):
    reader = definition["States"][INVENTORY_MAP]["ItemReader"]
    assert reader["Resource"] == "arn:aws:states:::s3:getObject"
    assert reader["ReaderConfig"] == {"InputType": "MANIFEST"}
    assert reader["Parameters"] == {"Bucket.$": "$.inventory_bucket", "Key.$": "$.inventory_key"}


def test_batches_are_sized_and_carry_the_worker_interface(definition):
    for label in MAP_LABELS:
        batcher = definition["States"][label]["ItemBatcher"]
        assert batcher["MaxItemsPerBatch"] == ITEMS_PER_BATCH
        assert batcher["MaxInputBytesPerBatch"] == BYTES_PER_BATCH <= 256 * 1024
        assert batcher["BatchInput"] == {f"{key}.$": f"$.{key}" for key in BATCH_INPUT_KEYS}


def test_concurrency_and_failure_tolerance_come_from_the_execution_input(definition):
    for label in MAP_LABELS:
        state = definition["States"][label]
        assert state["MaxConcurrencyPath"] == "$.max_concurrency"
        assert state["ToleratedFailurePercentagePath"] == "$.tolerated_failure_percentage"
        assert "MaxConcurrency" not in state and "ToleratedFailurePercentage" not in state


def test_map_run_results_are_written_under_the_output_prefix(definition):
    for label in MAP_LABELS:
        state = definition["States"][label]
        assert state["ResultWriter"] == {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket.$": "$.output_bucket", "Prefix.$": "$.results_prefix"},
        }
        # The settings survive the map (its result goes beside them) for the run manifest.
        assert state["ResultPath"] == "$.map_run" and state["Next"] == "WriteRunManifest"
        # A failed map run must fail the execution at this state: that is what a redrive re-runs.
        assert "Catch" not in state


def test_the_flow_validates_then_chooses_the_source_then_writes_the_run_manifest(batch, definition):
    # A Distributed Map runs in a Standard state machine (its children are the Express part).
    machine = only(batch, "AWS::StepFunctions::StateMachine")["Properties"]
    assert machine.get("StateMachineType", "STANDARD") == "STANDARD"
    states = definition["States"]
    assert definition["StartAt"] == "ValidateInput"
    assert states["ValidateInput"]["Choices"][0]["Next"] == "CheckOutputBucket"
    assert states["CheckOutputBucket"]["Choices"][0]["Next"] == "Settings"
    assert states["CheckOutputBucket"]["Default"] == "OutputBucketNotAllowed"
    assert states["ValidateInput"]["Default"] == "InvalidInput"
    assert states["InvalidInput"]["Type"] == "Fail"
    assert states["Settings"]["Next"] == "Source"
    assert {c["Next"] for c in states["Source"]["Choices"]} | {states["Source"]["Default"]} == set(MAP_LABELS)
    manifest = states["WriteRunManifest"]
    assert manifest["Resource"] == "arn:aws:states:::aws-sdk:s3:putObject"
    assert manifest["Arguments"]["Key"] == "{% $states.input.run_manifest_key %}"
    assert manifest["End"] is True


# -- what the JSONata fields compute ---------------------------------------------------------------------------------
GOOD = {"input_bucket": "images", "output_bucket": "vectors"}


@pytest.mark.parametrize(
    "execution_input",
    [
        GOOD,
        {**GOOD, "input_prefix": "photos/", "output_prefix": "runs/2026/"},
        {**GOOD, "max_concurrency": 1, "tolerated_failure_percentage": 0},
        {**GOOD, "max_concurrency": 10_000, "tolerated_failure_percentage": 2.5},
        {**GOOD, "inventory_manifest": "s3://inventory-bucket/images/daily/2026-12-01T01-00Z/manifest.json"},
    ],
)
def test_valid_input_is_accepted(definition, execution_input):
    assert definition["States"]["ValidateInput"]["Choices"][0]["Condition"] == VALID_INPUT
    assert evaluate(VALID_INPUT, execution_input) is True


@pytest.mark.parametrize(
    "execution_input",
    [
        {},
        "s3://images/photos/",
        {"input_bucket": "images"},
        {**GOOD, "output_bucket": "Not_A_Bucket"},
        {**GOOD, "input_prefix": 7},
        {**GOOD, "max_concurrency": 0},  # 0 would mean "no limit" to Step Functions
        {**GOOD, "max_concurrency": 10_001},
        {**GOOD, "max_concurrency": 2.5},
        {**GOOD, "max_concurrency": "100"},
        {**GOOD, "tolerated_failure_percentage": 101},
        {**GOOD, "tolerated_failure_percentage": -1},
        {**GOOD, "inventory_manifest": "s3://inventory-bucket/images/daily/data/part-0.csv.gz"},
        {**GOOD, "inventory_manifest": "https://inventory-bucket/manifest.json"},
    ],
)
def test_invalid_input_is_refused_with_the_rules(definition, execution_input):
    assert evaluate(VALID_INPUT, execution_input) is False
    refusal = definition["States"]["InvalidInput"]
    assert (refusal["Error"], refusal["Cause"]) == ("InvalidInput", INPUT_RULES)
    assert all(key in INPUT_RULES for key in [*DEFAULTS, *BATCH_INPUT_KEYS - {"execution_name"}, "inventory_manifest"])


@pytest.mark.parametrize(("output_bucket", "allowed"), [(OUTPUT_BUCKET, True), ("someone-elses-bucket", False)])
def test_only_the_output_bucket_parameter_is_accepted_and_the_refusal_names_it(definition, output_bucket, allowed):
    (check,) = definition["States"]["CheckOutputBucket"]["Choices"]
    assert evaluate(check["Condition"], {**GOOD, "output_bucket": output_bucket}) is allowed
    refusal = definition["States"]["OutputBucketNotAllowed"]
    assert refusal["Type"] == "Fail" and OUTPUT_BUCKET in refusal["Cause"] and "BatchOutputBucket" in refusal["Cause"]


def test_settings_fill_in_the_defaults_and_lay_out_the_output_prefix(definition):
    assert definition["States"]["Settings"]["Output"] == SETTINGS
    settings = evaluate(SETTINGS, {**GOOD, "output_prefix": "/embeddings/2026/"}, execution_name="nightly-7")
    assert settings == {
        **DEFAULTS,
        **GOOD,
        "output_prefix": "embeddings/2026",
        "execution_name": "nightly-7",
        "parts": "s3://vectors/embeddings/2026/parts/nightly-7/",
        "results_prefix": "embeddings/2026/runs/nightly-7/map-run",
        "run_manifest_key": "embeddings/2026/runs/nightly-7/run.json",
        "inventory_bucket": "",
        "inventory_key": "",
    }


def test_settings_keep_what_the_input_chose_and_split_the_inventory_manifest():
    chosen = {
        **GOOD,
        "max_concurrency": 400,
        "tolerated_failure_percentage": 0,
        "inventory_manifest": "s3://inventory-bucket/images/daily/2026-12-01T01-00Z/manifest.json",
    }
    settings = evaluate(SETTINGS, chosen)
    assert (settings["max_concurrency"], settings["tolerated_failure_percentage"]) == (400, 0)
    assert settings["inventory_bucket"] == "inventory-bucket"
    assert settings["inventory_key"] == "images/daily/2026-12-01T01-00Z/manifest.json"
    # An empty output prefix puts everything at the bucket's top level, never under "/".
    assert settings["run_manifest_key"] == "runs/run-1/run.json"
    assert evaluate('{% $states.input.inventory_bucket != "" %}', settings) is True


def test_the_source_choice_follows_the_inventory_manifest(definition):
    (choice,) = definition["States"]["Source"]["Choices"]
    assert choice["Next"] == INVENTORY_MAP
    assert evaluate(choice["Condition"], evaluate(SETTINGS, GOOD)) is False
    with_inventory = evaluate(SETTINGS, {**GOOD, "inventory_manifest": "s3://inv/x/manifest.json"})
    assert evaluate(choice["Condition"], with_inventory) is True


def test_the_run_manifest_records_the_run(definition):
    assert definition["States"]["WriteRunManifest"]["Arguments"]["Body"] == RUN_MANIFEST
    state = {
        **evaluate(SETTINGS, {**GOOD, "input_prefix": "photos/"}),
        "map_run": {
            "MapRunArn": "arn:aws:states:::mapRun:sm/EmbedPrefix:1",
            "ResultWriterDetails": {"Bucket": "vectors", "Key": "runs/run-1/map-run/1/manifest.json"},
        },
    }
    manifest = json.loads(evaluate(RUN_MANIFEST, state))
    assert manifest["execution"] == "run-1"
    assert manifest["execution_arn"].endswith(":run-1") and manifest["state_machine_arn"].startswith("arn:")
    assert manifest["started"] == "2026-12-01T00:00:00Z" and manifest["finished"]
    assert manifest["input"] == {"bucket": "images", "prefix": "photos/"}
    assert manifest["output"] == {
        "parts": "s3://vectors/parts/run-1/",
        "map_run": {"Bucket": "vectors", "Key": "runs/run-1/map-run/1/manifest.json"},
    }
    assert manifest["map_run_arn"] == "arn:aws:states:::mapRun:sm/EmbedPrefix:1"
    assert manifest["settings"] == {
        "items_per_batch": ITEMS_PER_BATCH,
        "max_concurrency": DEFAULTS["max_concurrency"],
        "tolerated_failure_percentage": DEFAULTS["tolerated_failure_percentage"],
    }


def test_the_run_manifest_of_an_inventory_run_names_the_report_instead_of_a_prefix():
    manifest_url = "s3://inventory-bucket/images/daily/2026-12-01T01-00Z/manifest.json"
    state = {**evaluate(SETTINGS, {**GOOD, "inventory_manifest": manifest_url}), "map_run": {}}
    manifest = json.loads(evaluate(RUN_MANIFEST, state))
    assert manifest["input"] == {"bucket": "images", "prefix": None, "inventory_manifest": manifest_url}


# -- IAM: read the inputs, write the one output bucket ---------------------------------------------------------------
def _statements(deployment: Deployment, role_prefix: str) -> list[dict]:
    (stack,) = [s for s in deployment.nested if s.startswith("BatchEmbeddingStack")]
    evaluator = deployment.nested[stack]
    policies = [
        r["Properties"]
        for r in evaluator.resources.values()
        if r["Type"] == "AWS::IAM::Policy" and r["Properties"]["Roles"][0]["Ref"].startswith(role_prefix)
    ]
    assert policies
    return [s for policy in policies for s in evaluator.resolve(policy["PolicyDocument"])["Statement"]]


def _grants(statements: list[dict]) -> dict[str, list]:
    found: dict[str, list] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow" and "Condition" not in statement
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in actions:
            found.setdefault(action, []).extend(resources)
    return found


@pytest.fixture(scope="module")
def scoped(synthesized) -> Deployment:
    return Deployment.evaluate(synthesized.root, synthesized.nested, ON)


READ = ["arn:*:s3:::images-a/*", "arn:*:s3:::images-b/*"]
OUTPUT = ["arn:aws:s3:::batch-output/*"]


def test_the_worker_reads_the_allowed_buckets_and_writes_only_the_output_bucket(scoped):
    grants = _grants(_statements(scoped, "Role"))
    s3 = {action: resources for action, resources in grants.items() if action.startswith("s3:")}
    assert s3 == {"s3:GetObject": READ, "s3:GetObjectVersion": READ, "s3:PutObject": OUTPUT}
    assert set(grants) - set(s3) == {"logs:CreateLogStream", "logs:PutLogEvents"}


def test_the_state_machine_lists_and_reads_the_inputs_and_writes_only_the_output_bucket(scoped):
    grants = _grants(_statements(scoped, "StateMachineRole"))
    assert grants["s3:ListBucket"] == ["arn:*:s3:::images-a", "arn:*:s3:::images-b"]
    assert sorted(grants["s3:GetObject"]) == sorted(READ + OUTPUT)
    for action in ("s3:PutObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"):
        assert grants[action] == OUTPUT
    assert not any(action.startswith("s3:") and ("Delete" in action or action == "s3:*") for action in grants)
    (invoked,) = grants["lambda:InvokeFunction"]
    assert invoked["Fn::GetAtt"][1] == "Arn" and invoked["Fn::GetAtt"][0].startswith("Worker")
    # "*" only where the service has no resource-level permissions (log deliveries, X-Ray).
    unscoped = {action for action, resources in grants.items() if "*" in resources}
    assert unscoped == {
        *(f"logs:{verb}LogDelivery" for verb in ("Create", "Get", "Update", "Delete")),
        "logs:ListLogDeliveries",
        *(f"xray:{action}" for action in ("PutTraceSegments", "PutTelemetryRecords", "GetSamplingRules")),
        "xray:GetSamplingTargets",
    }
    for action in ("logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"):
        assert grants[action] == ["arn:aws:logs:us-east-1:111122223333:log-group:*"]


def test_without_allowed_buckets_runs_may_read_no_bucket_as_the_api(synthesized):
    deployment = Deployment.evaluate(synthesized.root, synthesized.nested, {**ON, "AllowedS3Buckets": ""})
    machine = _grants(_statements(deployment, "StateMachineRole"))
    worker = _grants(_statements(deployment, "Role"))
    assert "s3:ListBucket" not in machine and machine["s3:GetObject"] == OUTPUT  # its own results only
    assert "s3:GetObject" not in worker and worker["s3:PutObject"] == OUTPUT  # writes stay scoped


def test_child_executions_are_granted_on_this_state_machine_only(scoped):
    grants = _grants(_statements(scoped, "StateMachineRole"))
    (start,) = grants["states:StartExecution"]
    assert start["Ref"].startswith("StateMachine")
    for action in ("states:DescribeExecution", "states:StopExecution", "states:RedriveExecution"):
        for resource in grants[action]:
            parts = resource["Fn::Join"][1]
            assert {"Fn::GetAtt": [start["Ref"], "Name"]} in parts


def test_the_output_grant_follows_the_partition_in_china(synthesized):
    china = {**PSEUDO_PARAMETERS, "AWS::Partition": "aws-cn", "AWS::Region": "cn-northwest-1"}
    deployment = Deployment.evaluate(synthesized.root, synthesized.nested, ON, china)
    assert _grants(_statements(deployment, "Role"))["s3:PutObject"] == ["arn:aws-cn:s3:::batch-output/*"]


# -- logs, tracing, lint ---------------------------------------------------------------------------------------------
def test_logs_have_a_retention_and_hold_no_execution_data(batch):
    groups = resources(batch, "AWS::Logs::LogGroup")
    assert len(groups) == 2 and all(g["Properties"]["RetentionInDays"] == 30 for g in groups.values())
    machine = only(batch, "AWS::StepFunctions::StateMachine")["Properties"]
    (machine_logs,) = [g for k, g in groups.items() if k.startswith("StateMachineLogs")]
    # Under /aws/vendedlogs/ the group stays out of the account's size-limited CloudWatch Logs resource policy.
    name = machine_logs["Properties"]["LogGroupName"]["Fn::Join"][1]
    assert name[0] == "/aws/vendedlogs/states/image-similarity-batch-"
    assert name[1] == {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}  # the stack's GUID
    logging = machine["LoggingConfiguration"]
    # Execution data holds S3 keys; the logs keep the events only.
    assert (logging["Level"], logging["IncludeExecutionData"]) == ("ALL", False)
    assert machine["TracingConfiguration"] == {"Enabled": True}


@pytest.mark.parametrize("region", ["us-east-1", "cn-north-1", "cn-northwest-1"])
def test_cfn_lint_reports_nothing_in_each_partition(synthesized, batch_path, region):
    root_path = next(p for p in synthesized.template_paths if p.name == "ImageSimilarity.template.json")
    findings = [f"{p.name}: {m}" for p in (root_path, batch_path) for m in lint_file(p, ManualArgs(regions=[region]))]
    assert findings == []


def test_cdk_nag_findings_in_the_batch_stack_are_all_acknowledged_on_its_two_roles(synthesized):
    violations = [
        v
        for report in synthesized.validation_report["pluginReports"]
        for v in report["violations"]
        if any("BatchEmbeddingStack" in c.get("constructPath", "") for c in v["violatingConstructs"])
    ]
    assert violations == []
    acknowledged = set()
    for path in synthesized.outdir.glob("*.metadata.json"):
        for construct_path, entries in json.loads(path.read_text()).items():
            if "BatchEmbeddingStack" in construct_path and any(
                e["type"] == "aws:cdk:acknowledged-rules" for e in entries
            ):
                acknowledged.add(re.sub(r"^/ImageSimilarity/BatchEmbeddingStack/", "", construct_path))
    assert acknowledged <= {"Role", "StateMachineRole"}
