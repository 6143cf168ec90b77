"""The regional REST API and its methods.

Methods are L1 `CfnMethod`s because their integration and authorization type are CloudFormation expressions
(Fn::If over the backend, Ref of the authorization parameter) that the L2 `Method` cannot take.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_cdk import Aws, Fn, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.checks import acknowledge

_CORS_HEADER = "method.response.header.Access-Control-Allow-Origin"
# Statuses the SageMaker integration passes on from the service (the SPEC's 4xx) or sets itself (400, 502), and the
# 404 of a feature that is not deployed; the Lambda proxy integration ignores method responses.
_METHOD_RESPONSE_STATUSES = ("200", "400", "403", "404", "413", "415", "422", "429", "502")
NOT_DEPLOYED_STATUS = "404"


def not_deployed_integration(message: str) -> dict:
    """A mock integration answering 404 {"message": `message`}: what a route serves while its feature is off.

    Routes live as long as the API, so switching a feature off only changes integrations: the stage's redeployment
    in the update phase stops serving the feature, and nothing has to be redeployed once its backend is deleted.
    Its one integration response has no selection pattern, so it answers every request, whatever the status the mock
    read from the request (a body of another content type passes through and reads as 200).
    """
    body = json.dumps({"message": message})
    return {
        "Type": "MOCK",
        "RequestTemplates": {"application/json": json.dumps({"statusCode": int(NOT_DEPLOYED_STATUS)})},
        "PassthroughBehavior": "WHEN_NO_MATCH",
        "IntegrationResponses": [
            {
                "StatusCode": NOT_DEPLOYED_STATUS,
                "ResponseParameters": {_CORS_HEADER: "'*'"},
                "ResponseTemplates": {"application/json": body},
            }
        ],
    }



def lambda_proxy_integration(function: lambda_.IFunction, timeout_ms: int | None = None) -> dict:
    """A Lambda proxy integration of `function` (CloudFormation Integration property); `function` must also be
    `invoked_by_api`."""
    uri = Fn.sub(
        "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Arn}/invocations",
        {"Arn": function.function_arn},
    )
    integration = {"Type": "AWS_PROXY", "IntegrationHttpMethod": "POST", "Uri": uri}
    if timeout_ms is not None:
        integration["TimeoutInMillis"] = timeout_ms
    return integration


def invoked_by_api(function: lambda_.Function, source_arn: str) -> None:
    """Lets the API's methods that match `source_arn` (an execute-api ARN pattern) invoke `function`."""
    function.add_permission(
        "ApiGatewayInvoke",
        principal=iam.ServicePrincipal("apigateway.amazonaws.com"),
        source_arn=source_arn,
    )

@dataclass(frozen=True)
class Backend:
    """One integration of a route and the condition under which it serves the route."""

    condition: str
    """Logical id of the condition."""
    integration: dict
    """A CloudFormation Integration property value; its Uri is the target a redeployment must follow."""


@dataclass(frozen=True)
class Route:
    """A method and the resource (path) it is on; the resource also holds the path's CORS preflight."""

    resource: apigw.Resource
    method: apigw.CfnMethod


class RestApi(Construct):
    """A regional REST API with CORS on every route and CORS headers on API Gateway's own error answers."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"{Aws.STACK_NAME}-image-similarity",
            description="Image Similarity API",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # The stage and its deployments are managed by infra.stage.ApiStage, which redeploys on every change.
            deploy=False,
            cloud_watch_role=False,
        )
        # Rejections by API Gateway itself (IAM signature, throttling, too large) keep the {"message": ...} body
        # and gain the CORS header so that browsers can read them.
        headers = {"Access-Control-Allow-Origin": "'*'"}
        response_types = (apigw.ResponseType.DEFAULT_4_XX, apigw.ResponseType.DEFAULT_5_XX)
        self.gateway_responses = [
            self.api.add_gateway_response(f"Gateway{t.response_type}", type=t, response_headers=headers)
            for t in response_types
        ]
        # What they are built from, for the stage's redeployment fingerprint.
        self.gateway_response_definitions = [{"type": t.response_type, "headers": headers} for t in response_types]
        # What each method was built from, for the stage's redeployment fingerprint, and what each method's
        # integration resolves to at deploy time (function ARN, endpoint name), which the fingerprint cannot see.
        self.method_definitions: list[dict] = []
        self.integration_targets: list = []
        self.cloudwatch_role, self.cloudwatch_account = self._cloudwatch_account()
        acknowledge(
            self.api,
            "The service validates request bodies itself and answers each problem with a specific 4xx "
            '{"message": ...}; a gateway model would duplicate that contract and replace those messages with a '
            "generic one.",
            "AwsSolutions-APIG2",
        )

    @property
    def rest_api_id(self) -> str:
        return self.api.rest_api_id

    @property
    def methods(self) -> list[apigw.CfnMethod]:
        """Every method of the API, the CORS preflights included."""
        return [construct for construct in self.api.node.find_all() if isinstance(construct, apigw.CfnMethod)]

    def add_method(
        self,
        path: str,
        http_method: str,
        *,
        backends: list[Backend],
        not_deployed: str,
        authorization_type: str,
        description: str,
        cors: bool = True,
    ) -> Route:
        """Add `http_method` on `path` (e.g. "image-similarity", "docs/{proxy+}"), for as long as the API exists.

        The first backend whose condition holds serves the route; with none, a mock answers 404 `not_deployed`.
        With `cors`, the path also answers browsers' CORS preflight.
        """
        resource = self.api.root.resource_for_path(path)
        integration: dict | object = not_deployed_integration(not_deployed)
        target: object = "mock"
        for backend in reversed(backends):
            integration = Fn.condition_if(backend.condition, backend.integration, integration)
            target = Fn.condition_if(backend.condition, backend.integration["Uri"], target)
        definition = {"path": path, "httpMethod": http_method, "integration": integration, "auth": authorization_type}
        if cors:
            cors_options = {"allow_origins": apigw.Cors.ALL_ORIGINS, "allow_methods": [http_method, "OPTIONS"]}
            resource.add_cors_preflight(**cors_options, allow_headers=[*apigw.Cors.DEFAULT_HEADERS])
            definition["cors"] = cors_options
        self.method_definitions.append(definition)
        self.integration_targets.append(target)
        method = apigw.CfnMethod(
            resource,
            http_method,
            rest_api_id=self.api.rest_api_id,
            resource_id=resource.resource_id,
            http_method=http_method,
            authorization_type=authorization_type,
            integration=integration,
            method_responses=[
                apigw.CfnMethod.MethodResponseProperty(status_code=status, response_parameters={_CORS_HEADER: True})
                for status in _METHOD_RESPONSE_STATUSES
            ],
            operation_name=description,
        )
        return Route(resource, method)

    def execute_arn(self, http_method: str, path: str) -> str:
        """The execute-api ARN of one method on any stage, for resource policies and Lambda permissions."""
        return self.api.arn_for_execute_api(http_method, path, "*")

    def _cloudwatch_account(self) -> tuple[iam.Role, apigw.CfnAccount]:
        """The Region's API Gateway logging role, required before a stage may write logs (APIGatewayCloudWatchRole).

        The account setting is one per Region: CloudFormation never deletes it, so it stays after an uninstall,
        pointing at this role, which goes with the stack (nothing piles up over reinstalls). Stacks in a Region whose
        other APIs log choose APIGatewayCloudWatchRole=existing and leave the setting alone.
        """
        role = iam.Role(
            self,
            "CloudWatchRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonAPIGatewayPushToCloudWatchLogs")
            ],
        )
        acknowledge(
            role,
            "AmazonAPIGatewayPushToCloudWatchLogs is the AWS-maintained policy made for exactly this role: API "
            "Gateway writing the account's API logs.",
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
        )
        account = apigw.CfnAccount(self, "CloudWatchAccount", cloud_watch_role_arn=role.role_arn)
        account.apply_removal_policy(RemovalPolicy.RETAIN)
        # In a Region where API Gateway was never used, the account setting cannot be written before the first API
        # Gateway resource exists (the AWS::ApiGateway::Account page says to add this DependsOn).
        account.add_resource_dependency(self.api.node.default_child)
        return role, account
