"""The synthesized templates, for every parameter combination: no data action on `"Resource": "*"`, no request bodies
in API Gateway's logs, and under AWS_IAM no method without IAM but the API Explorer's pages and the CORS preflight."""

from __future__ import annotations

import json

import pytest
from cfn_matrix import Deployment, combinations, has_api
from infra_synthesis import synthesize  # the same module (and cached synthesis) as tests/infra use

# Actions that read or change data, or let a principal act as someone else. Anything else on "*" must be an action
# that AWS does not scope to resources (e.g. ecr:GetAuthorizationToken, cloudwatch:PutMetricData).
DATA_SERVICES = {"s3", "dynamodb", "kms", "secretsmanager", "ssm", "sqs", "sns", "kinesis", "rds-data", "sagemaker",
                 "lambda", "iam", "sts", "execute-api", "ecr", "logs", "glue", "athena", "elasticfilesystem"}
NOT_RESOURCE_SCOPED = {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData", "xray:PutTraceSegments",
                       "xray:PutTelemetryRecords", "logs:CreateLogGroup",
                       # Step Functions logging and tracing (the batch state machine): vended log deliveries and
                       # X-Ray sampling have no resource types, so IAM only accepts "*" for them.
                       "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
                       "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "xray:GetSamplingRules",
                       "xray:GetSamplingTargets"}


def is_data_action(action: str) -> bool:
    if action in NOT_RESOURCE_SCOPED:
        return False
    service = action.split(":", 1)[0].lower()
    return action == "*" or service in DATA_SERVICES or action.endswith(":*")


@pytest.fixture(scope="module")
def deployments() -> list[Deployment]:
    synthesized = synthesize()
    assert synthesized.validation_error is None, synthesized.validation_error
    return [Deployment.evaluate(synthesized.root, synthesized.nested, c) for c in combinations(synthesized.root)]


def policy_statements(deployment: Deployment):
    for (stack, logical_id), (kind, properties) in deployment.resources.items():
        documents = []
        if kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append(properties["PolicyDocument"])
        if kind == "AWS::IAM::Role":
            documents += [p["PolicyDocument"] for p in properties.get("Policies", [])]
        for document in documents:
            for statement in document["Statement"]:
                yield f"{stack}/{logical_id}", statement


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_template_no_iam_statement_grants_a_data_action_on_every_resource(deployments):
    offending = set()
    for deployment in deployments:
        for where, statement in policy_statements(deployment):
            if statement.get("Effect") != "Allow" or "NotResource" in statement or "NotAction" in statement:
                assert "NotResource" not in statement and "NotAction" not in statement, (where, statement)
                continue
            resources = [json.dumps(r) if not isinstance(r, str) else r for r in as_list(statement["Resource"])]
            actions = as_list(statement["Action"])
            if "*" in resources and any(is_data_action(a) for a in actions):
                offending.add((where, json.dumps(actions)))
    assert not offending, offending


def test_template_checker_recognises_a_wildcard_data_grant():
    """The rule above can fail: a statement as a careless policy would write it is caught."""
    assert is_data_action("s3:GetObject") and is_data_action("sagemaker:InvokeEndpoint") and is_data_action("*")
    assert not is_data_action("ecr:GetAuthorizationToken")


def test_template_api_gateway_logs_never_include_request_bodies(deployments):
    for deployment in deployments:
        for (_stack, logical_id), (kind, properties) in deployment.resources.items():
            if kind != "AWS::ApiGateway::Stage":
                continue
            for settings in properties.get("MethodSettings", []):
                assert settings.get("DataTraceEnabled") is not True, (logical_id, deployment.parameters)
            access = properties.get("AccessLogSetting")
            if access:
                text = json.dumps(access["Format"])
                assert "$input" not in text and "body" not in text.lower(), text


def methods(deployment: Deployment):
    for (_stack, logical_id), (kind, properties) in deployment.resources.items():
        if kind == "AWS::ApiGateway::Method":
            yield logical_id, properties


def test_template_under_aws_iam_every_method_but_the_explorers_requires_iam(deployments):
    under_iam = [d for d in deployments if d.parameters["APIGatewayAuthorization"] == "AWS_IAM"]
    assert under_iam
    for deployment in under_iam:
        seen_post = False
        for logical_id, properties in methods(deployment):
            authorization = properties.get("AuthorizationType", "NONE")
            if authorization == "AWS_IAM":
                seen_post |= properties.get("OperationName") == "ImageSimilarity"  # /collections POSTs are IAM too
                continue
            explorer = "apiexplorer" in logical_id.lower() and properties["HttpMethod"] in ("GET", "HEAD")
            # Browsers send the CORS preflight unsigned; API Gateway answers it itself (MOCK), no backend behind it.
            preflight = properties["HttpMethod"] == "OPTIONS" and properties["Integration"]["Type"] == "MOCK"
            assert explorer or preflight, (logical_id, authorization, deployment.parameters)
        # The POST lives with the API (a 404 mock while ImageSimilarity=no), under IAM all the same.
        api = has_api(deployment.parameters)
        assert seen_post == api, deployment.parameters


def test_template_under_none_the_api_is_public_as_documented(deployments):
    """The other side of the switch, so the test above is not passing on a template that ignores the parameter."""
    public = [d for d in deployments
              if d.parameters["APIGatewayAuthorization"] == "NONE" and d.parameters["ImageSimilarity"] == "yes"]
    assert public
    for deployment in public:
        posts = [p for _, p in methods(deployment) if p["HttpMethod"] == "POST"]
        assert posts and all(p.get("AuthorizationType") == "NONE" for p in posts)


def test_template_loopback_switch_is_never_deployed():
    synthesized = synthesize()
    for template in [synthesized.root, *synthesized.nested.values()]:
        assert "IMAGE_SIMILARITY_ALLOW_LOOPBACK_URLS" not in json.dumps(template)
