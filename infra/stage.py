"""The API stage, which always serves a deployment made after the last change of the methods or the parameters.

CloudFormation only makes a new API Gateway deployment when the Deployment resource itself changes, and a change of
parameter values (backend, authorization) changes the methods but not the Deployment. So the deployment is made by an
AwsCustomResource (createDeployment) whose properties carry every parameter value and a fingerprint of the methods'
template: any change gives it new properties, CloudFormation updates it, it creates a new deployment, and the stage's
DeploymentId (its output) moves to that deployment. The replaced deployment is deleted in the update's clean-up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import jsii
from aws_cdk import (
    Aws,
    CfnCondition,
    Duration,
    Fn,
    IStableAnyProducer,
    IStableStringProducer,
    Lazy,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.api import RestApi, Route
from infra.checks import acknowledge
from infra.function_logs import LOG_RETENTION
from infra.parameters import apply_condition

# Stage-wide defaults; a user can raise them in the console or with a usage plan.
THROTTLING_RATE_LIMIT = 50  # requests per second
THROTTLING_BURST_LIMIT = 100


def access_log_format() -> str:
    """JSON access log lines from context variables only: API Gateway has no variable for the request body, so
    images never reach the logs."""
    field = apigw.AccessLogField
    fields = {
        "requestId": field.context_request_id(),
        "ip": field.context_identity_source_ip(),
        "caller": field.context_identity_caller(),
        "user": field.context_identity_user(),
        "requestTime": field.context_request_time(),
        "httpMethod": field.context_http_method(),
        "resourcePath": field.context_resource_path(),
        "status": field.context_status(),
        "protocol": field.context_protocol(),
        "responseLength": field.context_response_length(),
        "responseLatency": field.context_response_latency(),
        "integrationLatency": field.context_integration_latency(),
        "integrationStatus": field.context_integration_status(),
        "error": field.context_error_message(),
    }
    return apigw.AccessLogFormat.custom(json.dumps(fields)).to_string()


class ApiStage(Construct):
    """The named stage of `api`, with access logs, throttling and a redeployment on every change."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        api: RestApi,
        stage_name: str,
        parameter_values: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        method_settings = apigw.CfnStage.MethodSettingProperty(
            resource_path="/*",
            http_method="*",
            throttling_rate_limit=THROTTLING_RATE_LIMIT,
            throttling_burst_limit=THROTTLING_BURST_LIMIT,
            # ERROR execution logs, never data traces: those would log request bodies (images).
            logging_level="ERROR",
            data_trace_enabled=False,
            # API-wide metrics (count, latency, 4xx, 5xx) are free; per-method ones are billed as custom metrics.
            metrics_enabled=False,
        )
        # The stage's own settings are in the fingerprint too: a new version of them must come with a deployment
        # made by this stack, never fall back to one made by hand or by a route removal.
        fingerprint = _fingerprint(api, {"settings": method_settings, "accessLogFormat": access_log_format()})
        deployment = self._deployment(api, parameter_values, fingerprint)
        access_logs = logs.LogGroup(self, "AccessLogs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY)
        self.stage = apigw.CfnStage(
            self,
            "Stage",
            rest_api_id=api.rest_api_id,
            stage_name=stage_name,
            deployment_id=deployment.get_response_field("id"),
            access_log_setting=apigw.CfnStage.AccessLogSettingProperty(
                destination_arn=access_logs.log_group_arn, format=access_log_format()
            ),
            method_settings=[method_settings],
        )
        # The account's logging role must be in place before a stage may log.
        self.stage.node.add_dependency(api.cloudwatch_account)
        self.stage_name = stage_name
        self._api = api
        acknowledge(
            self.stage,
            "AWS WAF is billed per web ACL and request; the API has stage throttling and, with "
            "APIGatewayAuthorization=AWS_IAM, IAM authorization; users can associate their own web ACL with the stage.",
            "AwsSolutions-APIG3",
        )

    def redeploy_after_removal(self, route: Route, condition: CfnCondition) -> None:
        """Keep the stage from serving `route` once `condition` turns false and the route is deleted.

        CloudFormation deletes the resources of a switched-off feature in the update's clean-up, after the stage was
        redeployed, so that deployment still holds the route, pointing at a backend that is being deleted. This
        resource exists with the route and is deleted right after it (the route's path DependsOn it): its delete
        makes one more deployment of the stage, without the route.
        """
        removal = cr.AwsCustomResource(
            self,
            f"RedeployAfterRemoving{route.method.node.id}{route.resource.path.replace('/', '-')}",
            resource_type="Custom::ApiGatewayRouteRemoval",
            on_delete=cr.AwsSdkCall(
                service="APIGateway",
                action="createDeployment",
                parameters={
                    "restApiId": self._api.rest_api_id,
                    "stageName": self.stage_name,
                    "description": f"{route.resource.path} removed",
                },
                # The API or its last method may be going too (uninstall): nothing left to deploy then.
                ignore_error_codes_matching="NotFoundException|BadRequestException",
            ),
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [iam.PolicyStatement(actions=["apigateway:POST"], resources=[_deployments_arn(self._api)])]
            ),
            install_latest_aws_sdk=False,
            timeout=Duration.minutes(2),
        )
        apply_condition(removal, condition)
        route.resource.node.default_child.node.add_dependency(removal)

    def url_for_path(self, path: str = "/") -> str:
        """Invoke URL of `path` on this stage; the domain suffix comes from AWS::URLSuffix (amazonaws.com.cn in China)."""
        return Fn.join(
            "",
            [
                "https://",
                self._api.rest_api_id,
                f".execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}/",
                self.stage.ref,
                path,
            ],
        )

    def _deployment(self, api: RestApi, parameter_values: Mapping[str, str], fingerprint: str) -> cr.AwsCustomResource:
        deployments_arn = _deployments_arn(api)
        create = cr.AwsSdkCall(
            service="APIGateway",
            action="createDeployment",
            parameters={
                "restApiId": api.rest_api_id,
                # Readable in the console's deployment history, and what makes every change a new deployment.
                "description": Fn.join(
                    " ",
                    [*(f"{name}={value}" for name, value in parameter_values.items()), fingerprint],
                ),
            },
            physical_resource_id=cr.PhysicalResourceId.from_response("id"),
            output_paths=["id"],
        )
        delete = cr.AwsSdkCall(
            service="APIGateway",
            action="deleteDeployment",
            parameters={"restApiId": api.rest_api_id, "deploymentId": cr.PhysicalResourceIdReference()},
            # Already gone with the API, or still used by a stage someone pointed at it by hand: leave it.
            ignore_error_codes_matching="NotFoundException|BadRequestException",
        )
        deployment = cr.AwsCustomResource(
            self,
            "Deployment",
            resource_type="Custom::ApiGatewayDeployment",
            on_create=create,
            on_update=create,
            on_delete=delete,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [
                    iam.PolicyStatement(actions=["apigateway:POST"], resources=[deployments_arn]),
                    iam.PolicyStatement(actions=["apigateway:DELETE"], resources=[f"{deployments_arn}/*"]),
                ]
            ),
            # The provider's bundled SDK is enough; fetching the latest one from npm fails where npm is unreachable.
            install_latest_aws_sdk=False,
            timeout=Duration.minutes(2),
        )
        # A deployment snapshots the methods, so they must be in their final state first. A DependsOn would name
        # methods that another condition may switch off; a reference inside Fn::If orders the update just the same.
        custom_resource = deployment.node.find_child("Resource").node.default_child
        custom_resource.add_property_override(
            "Methods", Lazy.any(_Producer(lambda: _method_references(api, custom_resource.cfn_options.condition)))
        )
        acknowledge(
            deployment,
            "deleteDeployment acts on the deployment ids this resource created, unknown until run time; the "
            "wildcard is limited to this API's deployments.",
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:apigateway:<AWS::Region>::/restapis/<RestApi135E9C73>/deployments/*]",
        )
        return deployment


def _deployments_arn(api: RestApi) -> str:
    return f"arn:{Aws.PARTITION}:apigateway:{Aws.REGION}::/restapis/{api.rest_api_id}/deployments"


def _method_references(api: RestApi, own_condition: CfnCondition | None) -> list:
    """A Ref to each method; inside Fn::If when the method has a condition of its own (read at synthesis)."""
    references = []
    for method in api.methods:
        condition = method.cfn_options.condition
        if condition is None or condition is own_condition:
            references.append(method.ref)
        else:
            references.append(Fn.condition_if(condition.logical_id, method.ref, Aws.NO_VALUE))
    return references


def _fingerprint(api: RestApi, stage_settings: dict) -> str:
    """A hash of the methods' definitions and the stage's settings as synthesized, so that a new version of them is
    redeployed even when no parameter changed."""

    def fingerprint() -> str:
        definition = {"methods": api.method_definitions, "stage": stage_settings}
        rendered = json.dumps(Stack.of(api).resolve(definition), sort_keys=True)
        return "template=" + hashlib.sha256(rendered.encode()).hexdigest()[:16]

    return Lazy.string(_Producer(fingerprint))


@jsii.implements(IStableStringProducer)
@jsii.implements(IStableAnyProducer)
class _Producer:
    """Adapter from a Python callable to jsii's stable producer interfaces (Lazy values)."""

    def __init__(self, produce) -> None:
        self._produce = produce

    def produce(self):
        return self._produce()
