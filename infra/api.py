"""The regional REST API and its methods.

Methods are L1 `CfnMethod`s because their integration and authorization type are CloudFormation expressions
(Fn::If over the backend, Ref of the authorization parameter) that the L2 `Method` cannot take.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, IResolvable, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.checks import acknowledge

_CORS_HEADER = "method.response.header.Access-Control-Allow-Origin"
# Statuses the SageMaker integration maps to; the Lambda proxy integration ignores method responses.
_METHOD_RESPONSE_STATUSES = ("200", "400", "502")


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
        for response_type in (apigw.ResponseType.DEFAULT_4_XX, apigw.ResponseType.DEFAULT_5_XX):
            self.api.add_gateway_response(
                f"Gateway{response_type.response_type}",
                type=response_type,
                response_headers={"Access-Control-Allow-Origin": "'*'"},
            )
        # What each method was built from, for the stage's redeployment fingerprint.
        self.method_definitions: list[dict] = []
        self.cloudwatch_account = self._cloudwatch_account()
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
        integration: dict | IResolvable,
        authorization_type: str,
        description: str,
        cors: bool = True,
    ) -> Route:
        """Add `http_method` on `path` (e.g. "image-similarity", "docs/{proxy+}").

        `integration` is a CloudFormation Integration property value, possibly an Fn::If. With `cors`, the path also
        answers browsers' CORS preflight.
        """
        resource = self.api.root.resource_for_path(path)
        definition = {"path": path, "httpMethod": http_method, "integration": integration, "auth": authorization_type}
        if cors:
            cors_options = {"allow_origins": apigw.Cors.ALL_ORIGINS, "allow_methods": [http_method, "OPTIONS"]}
            resource.add_cors_preflight(**cors_options, allow_headers=[*apigw.Cors.DEFAULT_HEADERS])
            definition["cors"] = cors_options
        self.method_definitions.append(definition)
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

    def _cloudwatch_account(self) -> apigw.CfnAccount:
        """The region's API Gateway logging role, required before a stage may write access logs.

        It is an account-wide setting that other APIs may rely on, so the role outlives an uninstall.
        """
        role = iam.Role(
            self,
            "CloudWatchRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonAPIGatewayPushToCloudWatchLogs")
            ],
        )
        role.apply_removal_policy(RemovalPolicy.RETAIN)
        acknowledge(
            role,
            "AmazonAPIGatewayPushToCloudWatchLogs is the AWS-maintained policy made for exactly this role: API "
            "Gateway writing the account's API logs.",
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
        )
        account = apigw.CfnAccount(self, "CloudWatchAccount", cloud_watch_role_arn=role.role_arn)
        account.apply_removal_policy(RemovalPolicy.RETAIN)
        return account
