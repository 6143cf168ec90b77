"""The REST API, its single POST method, the stage and the redeployment on every change."""

from __future__ import annotations

import json
import re

import pytest


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


def _if_branches(value) -> list:
    """Every value an Fn::If chain may take."""
    if isinstance(value, dict) and "Fn::If" in value:
        _, when_true, when_false = value["Fn::If"]
        return _if_branches(when_true) + _if_branches(when_false)
    return [value]


def test_post_integration_is_chosen_by_backend_condition(post):
    condition, lambda_integration, rest = post["Integration"]["Fn::If"]
    assert condition == "LambdaBackendEnabled"
    sagemaker_condition, sagemaker_integration, not_deployed = rest["Fn::If"]
    assert sagemaker_condition == "SageMakerBackendEnabled"
    assert lambda_integration["Type"] == "AWS_PROXY"
    assert ":lambda:path/2015-03-31/functions/" in lambda_integration["Uri"]["Fn::Sub"][0]
    assert sagemaker_integration["Type"] == "AWS"
    assert ":runtime.sagemaker:path/endpoints/" in sagemaker_integration["Uri"]["Fn::Sub"][0]
    assert "Credentials" in sagemaker_integration
    for integration in (lambda_integration, sagemaker_integration):
        assert integration["IntegrationHttpMethod"] == "POST"
        assert integration["TimeoutInMillis"] <= 29_000
    assert not_deployed["Type"] == "MOCK"


def test_integration_response_status_codes_are_unique_in_every_method_and_branch(root):
    """API Gateway keys integration responses by status code: a second response with the same one replaces the first
    (issue 14, defect 1: two 400s made every SageMaker error a 200)."""
    checked = 0
    for logical_id, method in resources_of(root, "AWS::ApiGateway::Method").items():
        for integration in _if_branches(method["Properties"]["Integration"]):
            statuses = [r["StatusCode"] for r in integration.get("IntegrationResponses", [])]
            assert len(statuses) == len(set(statuses)), (logical_id, statuses)
            declared = {r["StatusCode"] for r in method["Properties"].get("MethodResponses", [])}
            assert set(statuses) <= declared, logical_id
            checked += 1
    assert checked >= 6  # OPTIONS, POST (Lambda, SageMaker, mock), the explorer's GETs (function, mock)


def _sagemaker_responses(post) -> list[dict]:
    return _if_branches(post["Integration"])[1]["IntegrationResponses"]


def test_sagemaker_errors_never_fall_back_to_200(post):
    responses = _sagemaker_responses(post)
    defaults = [r for r in responses if "SelectionPattern" not in r]
    assert [r["StatusCode"] for r in defaults] == ["200"]  # only the container's 200 body passes through as is
    patterns = [r["SelectionPattern"] for r in responses if "SelectionPattern" in r]
    for status in ("400", "403", "404", "413", "422", "424", "429", "500", "502", "503"):
        matching = [p for p in patterns if re.fullmatch(p, status)]
        assert len(matching) == 1, (status, matching)
    assert not any(re.fullmatch(p, "200") for p in patterns)


def test_sagemaker_model_errors_keep_the_containers_status_and_body(post):
    """A container's 4xx reaches the client with its own status (the SPEC's 403, 413, 422) and body, not a blanket
    400; a container's 5xx becomes a 502; the status is overridden once, at the end of the template."""
    (client_error,) = [r for r in _sagemaker_responses(post) if re.fullmatch(r.get("SelectionPattern", "^$"), "424")]
    template = client_error["ResponseTemplates"]["application/json"]
    assert "$input.path('$.OriginalStatusCode')" in template
    assert "#set($status = $original)" in template
    assert "$input.path('$.OriginalMessage')" in template
    assert template.count("$context.responseOverride.status") == 1
    assert template.rstrip().endswith("#set($context.responseOverride.status = $status)")
    assert "#set($status = 502)" in template


def test_a_switched_off_feature_answers_404_with_a_message(root):
    for method in resources_of(root, "AWS::ApiGateway::Method").values():
        props = method["Properties"]
        if props["HttpMethod"] == "OPTIONS":
            continue
        mock = _if_branches(props["Integration"])[-1]
        assert mock["Type"] == "MOCK", props["OperationName"]
        (response,) = mock["IntegrationResponses"]
        assert response["StatusCode"] == "404" and "SelectionPattern" not in response
        message = json.loads(response["ResponseTemplates"]["application/json"])["message"]
        # It names the parameter that deploys the feature, and the parameter exists.
        parameter = re.fullmatch(r".* is not deployed on this stack: set its (\w+) parameter to yes\.", message)
        assert parameter and parameter.group(1) in root["Parameters"], message


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


def test_logging_role_is_optional_and_goes_with_the_stack(root):
    """Issue 14, defect 10: one retained role per reinstall piled up; the Region's setting was always overwritten."""
    _, account = only(root, "AWS::ApiGateway::Account")
    assert account["DeletionPolicy"] == "Retain"  # CloudFormation cannot unset it; it points at no role afterwards
    role_id = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    assert (
        "DeletionPolicy" not in root["Resources"][role_id] or root["Resources"][role_id]["DeletionPolicy"] == "Delete"
    )
    assert account["Condition"] == root["Resources"][role_id]["Condition"] == "CloudWatchRoleCreated"
    assert root["Conditions"]["CloudWatchRoleCreated"] == {
        "Fn::And": [{"Condition": "ApiEnabled"}, {"Fn::Equals": [{"Ref": "APIGatewayCloudWatchRole"}, "create"]}]
    }
    assert root["Parameters"]["APIGatewayCloudWatchRole"]["AllowedValues"] == ["create", "existing"]


def test_stage_waits_for_the_account_logging_role_when_the_stack_sets_it(root):
    account_id, _ = only(root, "AWS::ApiGateway::Account")
    _, stage = only(root, "AWS::ApiGateway::Stage")
    condition, with_role, without = stage["Properties"]["Description"]["Fn::If"]
    assert condition == "CloudWatchRoleCreated"
    assert {"Ref": account_id} in with_role["Fn::Join"][1] and isinstance(without, str)
    assert account_id not in stage.get("DependsOn", [])


def test_execution_logs_expire_and_go_with_the_stack(root):
    """Issue 14, defect 10: API Gateway's execution-log group was created by API Gateway without a retention."""
    _, stage = only(root, "AWS::ApiGateway::Stage")
    (log_group_id,) = [d for d in stage["DependsOn"] if root["Resources"][d]["Type"] == "AWS::Logs::LogGroup"]
    log_group = root["Resources"][log_group_id]
    name = log_group["Properties"]["LogGroupName"]["Fn::Join"][1]
    assert name[0] == "API-Gateway-Execution-Logs_" and name[-1] == {"Ref": "APIGatewayStageName"}
    assert log_group["Properties"]["RetentionInDays"] > 0 and log_group["DeletionPolicy"] == "Delete"


def test_custom_resource_provider_logs_expire(root):
    """Issue 14, defect 10: the deployment provider's /aws/lambda group was created by Lambda, never expiring."""
    for function in resources_of(root, "AWS::Lambda::Function").values():
        log_group = root["Resources"][function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]]
        assert log_group["Properties"]["RetentionInDays"] > 0 and log_group["DeletionPolicy"] == "Delete"


def test_routes_live_as_long_as_the_api(root):
    """No route comes and goes with a feature, so no deployment is ever needed after a route's deletion."""
    _, api = only(root, "AWS::ApiGateway::RestApi")
    for kind in ("AWS::ApiGateway::Resource", "AWS::ApiGateway::Method"):
        assert {r["Condition"] for r in resources_of(root, kind).values()} == {api["Condition"]}
    assert not resources_of(root, "Custom::ApiGatewayRouteRemoval")


def test_the_logging_account_waits_for_an_api_gateway_resource(root):
    """Issue 14, defect 3: in a fresh Region the account setting fails unless an API Gateway resource exists first."""
    _, account = only(root, "AWS::ApiGateway::Account")
    api_id, _ = only(root, "AWS::ApiGateway::RestApi")
    assert api_id in account["DependsOn"]


def test_redeployment_waits_for_and_follows_the_gateway_responses(root):
    """Issue 14, defect 6: a deployment snapshots the gateway responses (CORS headers on API Gateway's own errors)."""
    _, deployment = only(root, "Custom::ApiGatewayDeployment")
    responses = resources_of(root, "AWS::ApiGateway::GatewayResponse")
    assert sorted(r["Ref"] for r in deployment["Properties"]["GatewayResponses"]) == sorted(responses)


def test_redeployment_follows_the_resolved_integration_targets(root):
    """Issue 14, defect 6: a replaced function or endpoint changes the integration's URI, not the template."""
    _, deployment = only(root, "Custom::ApiGatewayDeployment")
    targets = json.dumps(deployment["Properties"]["IntegrationTargets"])
    assert "Outputs.ImageSimilarityLambdaBackendFunction" in targets
    assert "runtime.sagemaker:path/endpoints/${Name}" in targets and "EndpointName" in targets
    assert "Outputs.ImageSimilarityApiExplorerExplorerFunction" in targets


def test_a_change_of_the_gateway_responses_changes_the_redeployment_fingerprint():
    """Issue 14, defect 6: a new version of the gateway responses must make a new deployment."""
    from aws_cdk import App, Stack

    from infra.api import RestApi
    from infra.stage import _fingerprint

    stack = Stack(App(), "Fingerprint")
    api = RestApi(stack, "Api")
    before = stack.resolve(_fingerprint(api, {}))
    api.gateway_response_definitions[0] = {**api.gateway_response_definitions[0], "headers": {"X-Other": "'1'"}}
    assert stack.resolve(_fingerprint(api, {})) != before
