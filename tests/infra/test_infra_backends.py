"""The Lambda and SageMaker nested stacks: one service image, sized by parameters, least-privilege roles."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template
from cfn_matrix import Evaluator
from infra_synthesis import REPOSITORY, Synthesized

LAMBDA_MAX_TIMEOUT_UNDER_API_GATEWAY = 29


@pytest.fixture(scope="module")
def lambda_template(synthesized: Synthesized) -> dict:
    return synthesized.nested_template("LambdaBackend")


@pytest.fixture(scope="module")
def sagemaker_template(synthesized: Synthesized) -> dict:
    return synthesized.nested_template("SageMakerBackend")


def resources_of(template: dict, kind: str) -> list[dict]:
    return [v for v in template["Resources"].values() if v["Type"] == kind]


def statements(template: dict, role_logical_id: str) -> list[dict]:
    found = []
    for policy in resources_of(template, "AWS::IAM::Policy"):
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]:
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def role_id_of(reference: dict) -> str:
    return reference["Fn::GetAtt"][0]


def nested_parameter_source(root: dict, nested_prefix: str, nested_parameter_ref: dict) -> object:
    """What the root passes into a nested stack parameter."""
    (stack,) = [v for k, v in root["Resources"].items() if k.startswith(nested_prefix) and v["Type"].endswith("Stack")]
    return stack["Properties"]["Parameters"][nested_parameter_ref["Ref"]]


def test_service_dockerfile_exists():
    # synth only fingerprints functions/; the CLI builds this Dockerfile at deploy time.
    assert (REPOSITORY / "functions" / "Dockerfile").is_file()


def test_both_backends_use_the_same_image(lambda_template, sagemaker_template):
    (function,) = resources_of(lambda_template, "AWS::Lambda::Function")
    (model,) = resources_of(sagemaker_template, "AWS::SageMaker::Model")
    lambda_tag = function["Properties"]["Code"]["ImageUri"]["Fn::Join"][1][-1].rsplit(":", 1)[1]
    sagemaker_tag = model["Properties"]["PrimaryContainer"]["Image"]["Fn::Sub"].rsplit(":", 1)[1]
    assert lambda_tag == sagemaker_tag


def test_function_is_a_container_sized_by_the_parameter(root, lambda_template):
    (function,) = resources_of(lambda_template, "AWS::Lambda::Function")
    props = function["Properties"]
    assert props["PackageType"] == "Image"
    assert props["Architectures"] == ["x86_64"]
    assert nested_parameter_source(root, "LambdaBackend", props["MemorySize"]) == {"Ref": "LambdaMemorySize"}
    assert props["Timeout"] < LAMBDA_MAX_TIMEOUT_UNDER_API_GATEWAY
    assert nested_parameter_source(root, "LambdaBackend", props["Environment"]["Variables"]["ALLOWED_S3_BUCKETS"]) == {
        "Ref": "AllowedS3Buckets"
    }
    assert props["Environment"]["Variables"]["LOG_LEVEL"] == "INFO"
    # The service then refuses s3:// URLs while no bucket is named (tests/test_s3_urls_in_deployments.py).
    assert props["Environment"]["Variables"]["S3_URLS_NEED_ALLOWED_BUCKETS"] == "AllowedS3Buckets"


def test_function_logs_to_its_own_log_group_with_retention(lambda_template):
    (function,) = resources_of(lambda_template, "AWS::Lambda::Function")
    log_group = lambda_template["Resources"][function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]]
    assert log_group["Properties"]["RetentionInDays"] > 0
    assert "LogGroupName" not in log_group["Properties"]  # a generated name never collides across updates


def s3_read_policy(template: dict, role_logical_id: str) -> dict:
    (policy,) = [
        p
        for p in resources_of(template, "AWS::IAM::Policy")
        if p["Properties"]["Roles"] == [{"Ref": role_logical_id}]
        and p["Properties"]["PolicyDocument"]["Statement"][0]["Action"] == "s3:GetObject"
    ]
    return policy


def test_function_role_may_only_write_its_logs_and_read_the_allowed_s3_objects(lambda_template):
    (function,) = resources_of(lambda_template, "AWS::Lambda::Function")
    role = role_id_of(function["Properties"]["Role"])
    assert "ManagedPolicyArns" not in lambda_template["Resources"][role]["Properties"]
    actions = sorted(a for s in statements(lambda_template, role) for a in _as_list(s["Action"]))
    assert actions == ["logs:CreateLogStream", "logs:PutLogEvents", "s3:GetObject"]
    _assert_s3_access_only_when_buckets_are_named(lambda_template, role)


def _assert_s3_access_only_when_buckets_are_named(template: dict, role: str) -> None:
    """Issue 14, defect 9: with AllowedS3Buckets empty the role reads no object at all (it was every object)."""
    policy = s3_read_policy(template, role)
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Resource"] == {"Fn::Split": [",", {"Ref": "S3ObjectArns"}]}
    assert template["Conditions"][policy["Condition"]] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "S3ObjectArns"}, ""]}]
    }
    for deployment_parameters, exists in (({"S3ObjectArns": ""}, False), ({"S3ObjectArns": "arn:*:s3:::a/*"}, True)):
        evaluator = nested_evaluator(template, deployment_parameters)
        assert (s3_policy_id(template, policy) in evaluator.resources) is exists


def nested_evaluator(template: dict, parameters: dict[str, str]) -> Evaluator:
    """`template` evaluated with `parameters`, and a placeholder for every other parameter without a default."""
    required = {name: "placeholder" for name, spec in template.get("Parameters", {}).items() if "Default" not in spec}
    return Evaluator(template, {**required, **parameters})


def s3_policy_id(template: dict, policy: dict) -> str:
    return next(k for k, v in template["Resources"].items() if v is policy)


def test_sagemaker_role_reads_s3_objects_only_when_buckets_are_named(sagemaker_template):
    (model,) = resources_of(sagemaker_template, "AWS::SageMaker::Model")
    _assert_s3_access_only_when_buckets_are_named(
        sagemaker_template, role_id_of(model["Properties"]["ExecutionRoleArn"])
    )


def test_function_reserved_concurrency_follows_the_parameter_and_0_means_none(root, lambda_template):
    """Issue 14, defect 9: a reservation caps the function so slow URL fetches cannot drain the account's pool."""
    (function,) = resources_of(lambda_template, "AWS::Lambda::Function")
    condition, value, otherwise = function["Properties"]["ReservedConcurrentExecutions"]["Fn::If"]
    assert value == {"Ref": "ReservedConcurrency"} and otherwise == {"Ref": "AWS::NoValue"}
    assert lambda_template["Conditions"][condition] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ReservedConcurrency"}, "0"]}]
    }
    assert nested_parameter_source(root, "LambdaBackend", {"Ref": "ReservedConcurrency"}) == {
        "Ref": "LambdaReservedConcurrency"
    }
    assert int(root["Parameters"]["LambdaReservedConcurrency"]["Default"]) > 0


def test_only_the_post_method_may_invoke_the_function(lambda_template):
    (permission,) = resources_of(lambda_template, "AWS::Lambda::Permission")
    assert permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
    assert permission["Properties"]["SourceArn"]["Fn::Join"][1][-1] == "/*/POST/image-similarity"


def test_s3_object_arns_follow_the_allowed_buckets_parameter(root):
    for prefix in ("LambdaBackend", "SageMakerBackend"):
        condition, named, nothing = nested_parameter_source(root, prefix, {"Ref": "S3ObjectArns"})["Fn::If"]
        assert condition == "HasAllowedS3Buckets"
        assert {"Ref": "AllowedS3Buckets"} in named["Fn::Join"][1][1]["Fn::Join"][1]["Fn::Split"]
        assert nothing == ""


def test_model_runs_the_service_image_with_the_same_environment(root, sagemaker_template):
    (model,) = resources_of(sagemaker_template, "AWS::SageMaker::Model")
    container = model["Properties"]["PrimaryContainer"]
    assert "cdk-hnb659fds-container-assets" in container["Image"]["Fn::Sub"]
    assert set(container["Environment"]) == {"ALLOWED_S3_BUCKETS", "S3_URLS_NEED_ALLOWED_BUCKETS", "LOG_LEVEL"}
    assert "ModelName" not in model["Properties"]
    # CreateModel checks the role can pull the image, so the role's policy must exist first.
    assert any(d.startswith("ExecutionRoleDefaultPolicy") for d in model["DependsOn"])


def test_endpoint_uses_the_instance_type_parameter_and_generated_names(root, sagemaker_template):
    (config,) = resources_of(sagemaker_template, "AWS::SageMaker::EndpointConfig")
    (variant,) = config["Properties"]["ProductionVariants"]
    assert nested_parameter_source(root, "SageMakerBackend", variant["InstanceType"]) == {
        "Ref": "SageMakerInstanceType"
    }
    assert nested_parameter_source(root, "SageMakerBackend", variant["InitialInstanceCount"]) == {
        "Ref": "SageMakerMinInstanceCount"
    }
    assert "EndpointConfigName" not in config["Properties"]


def test_endpoint_name_is_unique_to_its_stack_and_its_log_group_expires_with_it(sagemaker_template):
    """Issue 14, defect 10: SageMaker's own log group never expired and outlived the stack."""
    (endpoint,) = resources_of(sagemaker_template, "AWS::SageMaker::Endpoint")
    name = endpoint["Properties"]["EndpointName"]
    assert name == {
        "Fn::Join": ["-", ["image-similarity", {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}]]
    }
    (log_group_id,) = endpoint["DependsOn"]
    log_group = sagemaker_template["Resources"][log_group_id]
    assert log_group["Properties"]["LogGroupName"] == {"Fn::Join": ["", ["/aws/sagemaker/Endpoints/", name]]}
    assert log_group["Properties"]["RetentionInDays"] > 0 and log_group["DeletionPolicy"] == "Delete"


def test_sagemaker_auto_scaling_only_when_the_maximum_is_above_the_minimum(root, sagemaker_template):
    (target,) = resources_of(sagemaker_template, "AWS::ApplicationAutoScaling::ScalableTarget")
    (policy,) = resources_of(sagemaker_template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    assert target["Condition"] == policy["Condition"]
    assert sagemaker_template["Conditions"][target["Condition"]] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "MinInstanceCount"}, {"Ref": "MaxInstanceCount"}]}]
    }
    props = target["Properties"]
    assert props["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert (props["MinCapacity"], props["MaxCapacity"]) == ({"Ref": "MinInstanceCount"}, {"Ref": "MaxInstanceCount"})
    configuration = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert configuration["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
        "SageMakerVariantInvocationsPerInstance"
    )
    assert root["Parameters"]["SageMakerMinInstanceCount"]["Default"] == root["Parameters"][
        "SageMakerMaxInstanceCount"
    ]["Default"]  # off by default
    for counts, exists in ((("1", "1"), False), (("1", "3"), True)):
        evaluator = nested_evaluator(sagemaker_template, {"MinInstanceCount": counts[0], "MaxInstanceCount": counts[1]})
        assert evaluator.condition(target["Condition"]) is exists


def test_the_image_is_built_as_a_docker_image_not_an_oci_one(synthesized):
    """Issue 14, defect 2: SageMaker's CreateModel rejects the OCI manifests that recent Docker pushes by default."""
    import json

    images = [
        image
        for path in synthesized.outdir.glob("*.assets.json")
        for image in json.loads(path.read_text()).get("dockerImages", {}).values()
    ]
    assert images
    for image in images:
        assert image["source"]["dockerOutputs"] == ["type=docker"]


def test_api_gateway_role_may_invoke_only_this_endpoint(sagemaker_template):
    Template.from_json(sagemaker_template).has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [Match.object_like({"Principal": {"Service": "apigateway.amazonaws.com"}})]
            }
        },
    )
    roles = [
        k
        for k, v in sagemaker_template["Resources"].items()
        if v["Type"] == "AWS::IAM::Role"
        and v["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"]
        == "apigateway.amazonaws.com"
    ]
    (role,) = roles
    assert statements(sagemaker_template, role) == [
        {"Action": "sagemaker:InvokeEndpoint", "Effect": "Allow", "Resource": {"Ref": _endpoint_id(sagemaker_template)}}
    ]


def _endpoint_id(template: dict) -> str:
    (endpoint_id,) = [k for k, v in template["Resources"].items() if v["Type"] == "AWS::SageMaker::Endpoint"]
    return endpoint_id


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_service_image_and_explorer_run_a_python_lambda_supports_for_years(explorer_python_runtime):
    """Issue 14, defect 4: the image was on python:3.11, deprecated by Lambda. Dates from cfn-lint's runtime data."""
    import datetime
    import re

    from cfnlint.data import AdditionalSpecs
    from cfnlint.helpers import load_resource

    dockerfile = (REPOSITORY / "functions" / "Dockerfile").read_text()
    (version,) = re.findall(r"^FROM public\.ecr\.aws/lambda/python:(3\.\d+)$", dockerfile, re.MULTILINE)
    assert explorer_python_runtime == f"python{version}"  # one Python for the whole service package
    lifecycle = load_resource(AdditionalSpecs, "LmbdRuntimeLifecycle.json")[f"python{version}"]
    deprecated = datetime.date.fromisoformat(lifecycle["deprecated"])
    assert deprecated >= datetime.date(2029, 1, 1), lifecycle


@pytest.fixture(scope="module")
def explorer_python_runtime(synthesized: Synthesized) -> str:
    template = synthesized.nested_template("ApiExplorer")
    (function,) = resources_of(template, "AWS::Lambda::Function")
    assert function["Properties"]["Architectures"] == ["x86_64"]  # offered in every Region, China included
    return function["Properties"]["Runtime"]
