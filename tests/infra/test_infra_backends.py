"""The Lambda and SageMaker nested stacks: one service image, sized by parameters, least-privilege roles."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template
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


def test_function_logs_to_its_own_log_group_with_retention(lambda_template):
    (function,) = resources_of(lambda_template, "AWS::Lambda::Function")
    log_group = lambda_template["Resources"][function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]]
    assert log_group["Properties"]["RetentionInDays"] > 0
    assert "LogGroupName" not in log_group["Properties"]  # a generated name never collides across updates


def test_function_role_may_only_write_its_logs_and_read_s3_objects(lambda_template):
    (function,) = resources_of(lambda_template, "AWS::Lambda::Function")
    role = role_id_of(function["Properties"]["Role"])
    assert "ManagedPolicyArns" not in lambda_template["Resources"][role]["Properties"]
    actions = sorted(a for s in statements(lambda_template, role) for a in _as_list(s["Action"]))
    assert actions == ["logs:CreateLogStream", "logs:PutLogEvents", "s3:GetObject"]
    (s3,) = [s for s in statements(lambda_template, role) if s["Action"] == "s3:GetObject"]
    assert s3["Resource"] == {"Ref": "S3ObjectArns"}


def test_only_the_post_method_may_invoke_the_function(lambda_template):
    (permission,) = resources_of(lambda_template, "AWS::Lambda::Permission")
    assert permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
    assert permission["Properties"]["SourceArn"]["Fn::Join"][1][-1] == "/*/POST/image-similarity"


def test_s3_object_arns_follow_the_allowed_buckets_parameter(root):
    for prefix in ("LambdaBackend", "SageMakerBackend"):
        condition, named, anything = nested_parameter_source(root, prefix, {"Ref": "S3ObjectArns"})["Fn::If"]
        assert condition == "HasAllowedS3Buckets"
        assert {"Ref": "AllowedS3Buckets"} in named["Fn::Join"][1][1]["Fn::Join"][1]["Fn::Split"]
        assert anything == {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::*/*"]]}


def test_model_runs_the_service_image_with_the_same_environment(root, sagemaker_template):
    (model,) = resources_of(sagemaker_template, "AWS::SageMaker::Model")
    container = model["Properties"]["PrimaryContainer"]
    assert "cdk-hnb659fds-container-assets" in container["Image"]["Fn::Sub"]
    assert set(container["Environment"]) == {"ALLOWED_S3_BUCKETS", "LOG_LEVEL"}
    assert "ModelName" not in model["Properties"]
    # CreateModel checks the role can pull the image, so the role's policy must exist first.
    assert any(d.startswith("ExecutionRoleDefaultPolicy") for d in model["DependsOn"])


def test_endpoint_uses_the_instance_type_parameter_and_generated_names(root, sagemaker_template):
    (config,) = resources_of(sagemaker_template, "AWS::SageMaker::EndpointConfig")
    (variant,) = config["Properties"]["ProductionVariants"]
    assert nested_parameter_source(root, "SageMakerBackend", variant["InstanceType"]) == {
        "Ref": "SageMakerInstanceType"
    }
    assert variant["InitialInstanceCount"] == 1
    (endpoint,) = resources_of(sagemaker_template, "AWS::SageMaker::Endpoint")
    assert "EndpointName" not in endpoint["Properties"]
    assert "EndpointConfigName" not in config["Properties"]


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
