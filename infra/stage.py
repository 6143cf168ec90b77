"""The API stage, which always serves a deployment made after the last change of the methods or the parameters.

CloudFormation only makes a new API Gateway deployment when the Deployment resource itself changes, and a change of
parameter values (backend, authorization) changes the methods but not the Deployment. So the deployment is made by an
AwsCustomResource (createDeployment) whose properties carry every parameter value and a fingerprint of the methods'
template: any change gives it new properties, CloudFormation updates it, it creates a new deployment, and the stage's
DeploymentId (its output) moves to that deployment. The replaced deployment is deleted in the update's clean-up.

That is the only deployment an update makes, in its update phase: routes live as long as the API and a feature that
is switched off keeps its routes with a mock integration (infra.api), so no clean-up-phase deletion ever needs a
deployment (CreateDeployment is throttled per account, and a deployment made while a stage is renamed would serve or
re-create the old stage).
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
from aws_cdk import aws_wafv2 as wafv2
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.api import RestApi
from infra.checks import acknowledge
from infra.function_logs import LOG_RETENTION

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
        creates_cloudwatch_role: CfnCondition,
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
        # made by this stack, never fall back to one made by hand.
        fingerprint = _fingerprint(api, {"settings": method_settings, "accessLogFormat": access_log_format()})
        deployment = self._deployment(api, parameter_values, fingerprint)
        access_logs = logs.LogGroup(self, "AccessLogs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY)
        # API Gateway writes ERROR execution logs to a group it names after the API and stage, and creates it without
        # a retention unless it exists: made here first, it expires and goes with the stack.
        execution_logs = logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=Fn.join("", ["API-Gateway-Execution-Logs_", api.rest_api_id, "/", stage_name]),
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.stage = apigw.CfnStage(
            self,
            "Stage",
            rest_api_id=api.rest_api_id,
            stage_name=stage_name,
            # The account's logging role must be set before a stage may log. The Ref orders the stage after the
            # account setting when this stack makes it; a DependsOn could not, as that setting is optional.
            description=Fn.condition_if(
                creates_cloudwatch_role.logical_id,
                Fn.join("", ["Logs with the API Gateway account setting ", api.cloudwatch_account.ref]),
                "Logs with the Region's existing API Gateway CloudWatch role",
            ).to_string(),
            deployment_id=deployment.get_response_field("id"),
            access_log_setting=apigw.CfnStage.AccessLogSettingProperty(
                destination_arn=access_logs.log_group_arn, format=access_log_format()
            ),
            method_settings=[method_settings],
        )
        self.stage.add_resource_dependency(execution_logs.node.default_child)
        self.stage_name = stage_name
        self._api = api
        acknowledge(
            self.stage,
            "AWS WAF is billed per web ACL and request, so it is optional: the WebACLArn parameter associates a web "
            "ACL with the stage; without it the API has stage throttling and, with APIGatewayAuthorization=AWS_IAM, "
            "IAM authorization.",
            "AwsSolutions-APIG3",
        )

    def associate_web_acl(self, web_acl_arn: str, condition: CfnCondition) -> None:
        """Associate a regional AWS WAF web ACL with the stage, under `condition`."""
        association = wafv2.CfnWebACLAssociation(
            self,
            "WebACLAssociation",
            resource_arn=Fn.join(
                "",
                [
                    f"arn:{Aws.PARTITION}:apigateway:{Aws.REGION}::/restapis/",
                    self._api.rest_api_id,
                    "/stages/",
                    self.stage.ref,
                ],
            ),
            web_acl_arn=web_acl_arn,
        )
        association.cfn_options.condition = condition

    def add_custom_domain(self, domain_name: str, certificate_arn: str, condition: CfnCondition) -> str:
        """Serve the stage at https://`domain_name`/ (a regional custom domain); returns the DNS target for a CNAME."""
        domain = apigw.CfnDomainName(
            self,
            "CustomDomain",
            domain_name=domain_name,
            regional_certificate_arn=certificate_arn,
            endpoint_configuration=apigw.CfnDomainName.EndpointConfigurationProperty(types=["REGIONAL"]),
            security_policy="TLS_1_2",
        )
        mapping = apigw.CfnBasePathMapping(
            self, "CustomDomainMapping", domain_name=domain.ref, rest_api_id=self._api.rest_api_id, stage=self.stage.ref
        )
        for resource in (domain, mapping):
            resource.cfn_options.condition = condition
        return domain.attr_regional_domain_name

    def url_for_path(self, path: str = "/") -> str:
        """Invoke URL of `path` on this stage; the domain suffix comes from AWS::URLSuffix (amazonaws.com.cn in
        China)."""
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
            # The provider's logs expire and go with the stack, like every other log group of the app.
            log_group=logs.LogGroup(
                self, "DeploymentLogs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY
            ),
        )
        # A deployment snapshots the methods, so they must be in their final state first. A DependsOn would name
        # methods that another condition may switch off; a reference inside Fn::If orders the update just the same.
        custom_resource = deployment.node.find_child("Resource").node.default_child
        custom_resource.add_property_override(
            "Methods", Lazy.any(_Producer(lambda: _method_references(api, custom_resource.cfn_options.condition)))
        )
        # A deployment snapshots the gateway responses too (the CORS header on API Gateway's own errors): they must
        # exist first, and a change of them is in the fingerprint.
        custom_resource.add_property_override(
            "GatewayResponses", [response.node.default_child.ref for response in api.gateway_responses]
        )
        # What each integration resolves to at deploy time: a replaced function or endpoint changes it without
        # changing the template, and the stage must then be redeployed to call the new one.
        custom_resource.add_property_override(
            "IntegrationTargets", Lazy.any(_Producer(lambda: api.integration_targets))
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
    """A hash of the methods' and gateway responses' definitions and the stage's settings as synthesized, so that a
    new version of them is redeployed even when no parameter changed."""

    def fingerprint() -> str:
        definition = {
            "methods": api.method_definitions,
            "gatewayResponses": api.gateway_response_definitions,
            "stage": stage_settings,
        }
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
