"""The REST API, its single POST method, the stage and the redeployment on every change."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template


def resources_of(template: dict, kind: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def only(template: dict, kind: str) -> tuple[str, dict]:
    (item,) = resources_of(template, kind).items()
    return item


@pytest.fixture(scope="module")
def post(root) -> dict:
    methods = [
        m
        for m in resources_of(root, "AWS::ApiGateway::Method").values()
        if m["Properties"]["HttpMethod"] == "POST" and m["Properties"]["OperationName"] == "ImageSimilarity"
    ]
    assert len(methods) == 1, "exactly one POST method for all parameter combinations"
    return methods[0]["Properties"]


def test_api_is_regional(root):
    _, api = only(root, "AWS::ApiGateway::RestApi")
    assert api["Properties"]["EndpointConfiguration"]["Types"] == ["REGIONAL"]


def test_post_method_takes_its_authorization_from_the_parameter(post):
    assert post["AuthorizationType"] == {"Ref": "APIGatewayAuthorization"}


def test_post_integration_is_chosen_by_backend_condition(post):
    condition, lambda_integration, sagemaker_integration = post["Integration"]["Fn::If"]
    assert condition == "LambdaBackendEnabled"
    assert lambda_integration["Type"] == "AWS_PROXY"
    assert ":lambda:path/2015-03-31/functions/" in lambda_integration["Uri"]["Fn::Sub"][0]
    assert sagemaker_integration["Type"] == "AWS"
    assert ":runtime.sagemaker:path/endpoints/" in sagemaker_integration["Uri"]["Fn::Sub"][0]
    assert "Credentials" in sagemaker_integration
    for integration in (lambda_integration, sagemaker_integration):
        assert integration["IntegrationHttpMethod"] == "POST"
        assert integration["TimeoutInMillis"] <= 29_000


def test_sagemaker_integration_passes_container_4xx_through(post):
    responses = post["Integration"]["Fn::If"][2]["IntegrationResponses"]
    by_pattern = {r.get("SelectionPattern"): r for r in responses}
    assert by_pattern[None]["StatusCode"] == "200"  # the default: the container's 200 body as is
    model_error = by_pattern["424"]["ResponseTemplates"]["application/json"]
    assert "$context.responseOverride.status = $status" in model_error
    assert "$input.path('$.OriginalMessage')" in model_error
    # No response turns an error into a 200, and the patterns do not overlap.
    assert all(r["StatusCode"] != "200" for p, r in by_pattern.items() if p is not None)
    assert set(by_pattern) == {None, "424", r"4(?!24)\d{2}", r"5\d{2}"}


def test_sagemaker_error_patterns_select_the_right_statuses(post):
    import re

    responses = post["Integration"]["Fn::If"][2]["IntegrationResponses"]
    patterns = [r["SelectionPattern"] for r in responses if "SelectionPattern" in r]
    for status in ("400", "404", "413", "424", "429", "500", "503"):
        matching = [p for p in patterns if re.fullmatch(p, status)]
        assert len(matching) == 1, (status, matching)
    assert not any(re.fullmatch(p, "200") for p in patterns)


def test_cors_preflight_on_the_route(root):
    options = [
        m for m in resources_of(root, "AWS::ApiGateway::Method").values() if m["Properties"]["HttpMethod"] == "OPTIONS"
    ]
    assert options  # /image-similarity's, and one per /collections path (tests/infra/test_infra_search.py)
    for option in options:
        assert option["Properties"]["AuthorizationType"] == "NONE"
        headers = option["Properties"]["Integration"]["IntegrationResponses"][0]["ResponseParameters"]
        assert headers["method.response.header.Access-Control-Allow-Origin"] == "'*'"


def test_gateway_errors_carry_cors_headers(root):
    responses = resources_of(root, "AWS::ApiGateway::GatewayResponse").values()
    assert {r["Properties"]["ResponseType"] for r in responses} == {"DEFAULT_4XX", "DEFAULT_5XX"}
    for response in responses:
        assert response["Properties"]["ResponseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"]


def test_stage_named_by_parameter_with_throttling_and_error_logs_only(root):
    _, stage = only(root, "AWS::ApiGateway::Stage")
    props = stage["Properties"]
    assert props["StageName"] == {"Ref": "APIGatewayStageName"}
    (settings,) = props["MethodSettings"]
    assert settings["ThrottlingRateLimit"] > 0 and settings["ThrottlingBurstLimit"] >= settings["ThrottlingRateLimit"]
    assert settings["DataTraceEnabled"] is False  # data traces would log request bodies (images)
    assert settings["LoggingLevel"] == "ERROR"


def test_access_logs_never_contain_request_bodies(root):
    _, stage = only(root, "AWS::ApiGateway::Stage")
    access_log = stage["Properties"]["AccessLogSetting"]
    fields = json.loads(access_log["Format"])
    assert all(value.startswith("$context.") for value in fields.values())
    assert not any("body" in value.lower() or "$input" in value for value in fields.values())
    log_group_id = access_log["DestinationArn"]["Fn::GetAtt"][0]
    assert root["Resources"][log_group_id]["Properties"]["RetentionInDays"] > 0


def test_stage_serves_the_deployment_made_by_the_redeployment_resource(root):
    _, stage = only(root, "AWS::ApiGateway::Stage")
    deployment_id, attribute = stage["Properties"]["DeploymentId"]["Fn::GetAtt"]
    assert attribute == "id"
    assert root["Resources"][deployment_id]["Type"] == "Custom::ApiGatewayDeployment"
    assert not resources_of(root, "AWS::ApiGateway::Deployment"), "a second writer of the stage's deployment"


def test_redeployment_carries_every_parameter_and_runs_after_the_methods(root):
    _, deployment = only(root, "Custom::ApiGatewayDeployment")
    update = json.dumps(deployment["Properties"]["Update"])
    assert deployment["Properties"]["Create"] == deployment["Properties"]["Update"]
    assert "createDeployment" in update
    for name in root["Parameters"]:
        if name != "BootstrapVersion":
            assert json.dumps({"Ref": name}) in update, name
    assert "template=" in update  # template changes of the methods or the stage settings redeploy too
    methods = resources_of(root, "AWS::ApiGateway::Method")
    post_id = next(k for k, v in methods.items() if v["Properties"].get("OperationName") == "ImageSimilarity")
    # A plain Ref, or one inside Fn::If when the method's condition is narrower than the redeployment's.
    assert json.dumps({"Ref": post_id}) in json.dumps(deployment["Properties"]["Methods"])
    assert "DependsOn" not in deployment or post_id not in deployment["DependsOn"]


def test_redeployment_provider_is_conditional_and_needs_no_npm(root):
    _, api = only(root, "AWS::ApiGateway::RestApi")
    functions = resources_of(root, "AWS::Lambda::Function")
    assert functions and all(f["Condition"] == api["Condition"] for f in functions.values())
    _, deployment = only(root, "Custom::ApiGatewayDeployment")
    assert deployment["Properties"]["InstallLatestAwsSdk"] is False


def test_logging_role_is_retained_on_uninstall(root):
    _, account = only(root, "AWS::ApiGateway::Account")
    assert account["DeletionPolicy"] == "Retain"
    role_id = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    assert root["Resources"][role_id]["DeletionPolicy"] == "Retain"


def test_stage_waits_for_the_account_logging_role(root):
    account_id, _ = only(root, "AWS::ApiGateway::Account")
    Template.from_json(root).has_resource("AWS::ApiGateway::Stage", {"DependsOn": Match.array_with([account_id])})


def test_each_route_is_followed_by_a_redeployment_when_it_is_removed(root):
    """Removed routes go in the update's clean-up, after the stage's redeployment; one more deployment follows."""
    paths = {
        k: v
        for k, v in resources_of(root, "AWS::ApiGateway::Resource").items()
        if "Fn::GetAtt" in json.dumps(v["Properties"]["ParentId"])
    }
    assert paths
    for path in paths.values():
        (removal_id,) = [
            d for d in path["DependsOn"] if root["Resources"][d]["Type"] == "Custom::ApiGatewayRouteRemoval"
        ]
        removal = root["Resources"][removal_id]
        assert removal["Condition"] == path["Condition"]
        assert set(removal["Properties"]) == {"ServiceToken", "Delete", "InstallLatestAwsSdk"}  # nothing on create
        call = json.dumps(removal["Properties"]["Delete"])
        assert "createDeployment" in call and json.dumps({"Ref": "APIGatewayStageName"}) in call
        assert "NotFoundException|BadRequestException" in call
