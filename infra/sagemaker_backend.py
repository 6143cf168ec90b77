"""SageMaker inference backend: the service image on a real-time endpoint behind an AWS integration."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, CfnCondition, CfnParameter, Fn, NestedStack, RemovalPolicy
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra.checks import acknowledge
from infra.function_logs import LOG_RETENTION
from infra.service import S3ReadAccess, ServiceProps, service_image

CORS_ORIGIN = {"method.response.header.Access-Control-Allow-Origin": "'*'"}

# API Gateway keys integration responses by status code (PutIntegrationResponse's path ends in
# /responses/{status_code}), so there is one response per status and the status a client sees is chosen inside the
# mapping template with $context.responseOverride.status, set once at the end (overrides are final).
#
# SageMaker answers a container's non-2xx response with its own 424 ModelError, whose JSON carries the container's
# status (OriginalStatusCode) and body (OriginalMessage). Unwrap it so clients see the container's 4xx (the SPEC's 403,
# 413, 422 ...) and its {"message": ...} body, exactly as from the Lambda backend; a container 5xx becomes a 502.
# SageMaker's own 4xx other than 424 (e.g. ValidationError) say what was wrong with the request: a 400 with that
# reason. escapeJavaScript also turns ' into \', which JSON does not allow, hence the replaceAll.
_CLIENT_ERROR_TEMPLATE = r"""#set($original = $input.path('$.OriginalStatusCode'))
#if("$!original" != "")
#if($original >= 400 && $original < 500)
#set($status = $original)
$input.path('$.OriginalMessage')
#else
#set($status = 502)
{"message": "The inference endpoint failed to answer. Retry later; see the endpoint's logs if it persists."}
#end
#else
#set($detail = $input.path('$.message'))
#if("$!detail" == "")#set($detail = $input.path('$.Message'))#end
#set($status = 400)
{"message": "The inference endpoint rejected the request: $util.escapeJavaScript($detail).replaceAll("\\'", "'")"}
#end
#set($context.responseOverride.status = $status)"""

_ENDPOINT_FAILED_TEMPLATE = '{"message": "The inference endpoint is unavailable or overloaded. Retry later."}'


def _integration_response(status: str, selection_pattern: str | None = None, template: str | None = None) -> dict:
    response: dict = {"StatusCode": status, "ResponseParameters": CORS_ORIGIN}
    if selection_pattern is not None:
        response["SelectionPattern"] = selection_pattern
    if template is not None:
        response["ResponseTemplates"] = {"application/json": template}
    return response


# Selection patterns match the SageMaker runtime's HTTP status and must not overlap; one response per status code.
INTEGRATION_RESPONSES = [
    _integration_response("200"),  # no pattern: the default, the container's 200 body passes through
    _integration_response("400", r"4\d{2}", _CLIENT_ERROR_TEMPLATE),
    _integration_response("502", r"5\d{2}", _ENDPOINT_FAILED_TEMPLATE),
]
# Target tracking keeps each instance near this many invocations per minute: about a third of what one CPU instance
# embeds (bench/PERF.md: ~100 ms per image per core), so a burst is absorbed while new instances start.
TARGET_INVOCATIONS_PER_INSTANCE = 600
VARIANT = "AllTraffic"


@dataclass(frozen=True)
class SageMakerBackendProps:
    service: ServiceProps
    instance_type: str
    """A parameter value."""
    min_instances: str
    """A parameter value: the endpoint's initial and minimum instance count."""
    max_instances: str
    """A parameter value: above `min_instances`, auto scaling up to this count."""


class SageMakerBackend(NestedStack):
    """Model, endpoint configuration and endpoint, plus the role API Gateway uses to invoke that endpoint only."""

    def __init__(self, scope: Construct, construct_id: str, *, props: SageMakerBackendProps) -> None:
        super().__init__(
            scope,
            construct_id,
            description="Image Similarity: SageMaker inference backend",
            parameters={
                S3ReadAccess.PARAMETER: props.service.s3_object_arns,
                "MinInstanceCount": props.min_instances,
                "MaxInstanceCount": props.max_instances,
            },
        )
        # The endpoint's name is fixed for the life of this nested stack (its id is unique), so that its log group
        # can exist before it, with a retention, and go with the stack.
        endpoint_name = Fn.join("-", ["image-similarity", Fn.select(2, Fn.split("/", Aws.STACK_ID))])
        self.log_group = logs.LogGroup(
            self,
            "EndpointLogs",
            log_group_name=Fn.join("", ["/aws/sagemaker/Endpoints/", endpoint_name]),
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.DESTROY,
        )
        image = service_image(self, props.service)
        execution_role = self._execution_role()
        self.s3_access = S3ReadAccess(self, "S3ReadAccess", role=execution_role)
        image.repository.grant_pull(execution_role)
        min_instances = CfnParameter(self, "MinInstanceCount", type="Number", min_value=1)
        max_instances = CfnParameter(self, "MaxInstanceCount", type="Number", min_value=1)

        # SageMaker starts the image with the argument `serve` by itself; port 8080, GET /ping, POST /invocations.
        # No VPC and no network isolation: the container must fetch the http(s) and s3:// image URLs it is given.
        model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=execution_role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image.image_uri, environment=props.service.environment()
            ),
        )
        # CreateModel checks that the role can pull the image: its policy must exist first (the role itself is
        # already a dependency through ExecutionRoleArn).
        model.node.add_dependency(execution_role.node.find_child("DefaultPolicy"))

        # No names anywhere: a new instance type or environment replaces the model and the configuration
        # (both immutable) and CloudFormation moves the endpoint to them in place, with no name clash.
        config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name="AllTraffic",
                    model_name=model.attr_model_name,
                    instance_type=props.instance_type,
                    initial_instance_count=min_instances.value_as_number,
                    initial_variant_weight=1,
                )
            ],
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self, "Endpoint", endpoint_name=endpoint_name, endpoint_config_name=config.attr_endpoint_config_name
        )
        self.endpoint.add_resource_dependency(self.log_group.node.default_child)
        self._auto_scaling(min_instances, max_instances)

        self.invoke_role = iam.Role(
            self,
            "ApiGatewayInvokeRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="API Gateway: invoke the Image Similarity endpoint, nothing else",
        )
        # The Ref of an AWS::SageMaker::Endpoint is its ARN.
        self.invoke_role.add_to_policy(
            iam.PolicyStatement(actions=["sagemaker:InvokeEndpoint"], resources=[self.endpoint.ref])
        )
        _suppress_findings(execution_role)

    def _auto_scaling(self, min_instances: CfnParameter, max_instances: CfnParameter) -> None:
        """Target tracking on invocations per instance, when the maximum is above the minimum."""
        scales = CfnCondition(
            self,
            "AutoScalingEnabled",
            expression=Fn.condition_not(
                Fn.condition_equals(min_instances.value_as_string, max_instances.value_as_string)
            ),
        )
        # No role: Application Auto Scaling uses (and creates) its service-linked role for SageMaker endpoints.
        target = appscaling.CfnScalableTarget(
            self,
            "ScalableTarget",
            service_namespace="sagemaker",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            resource_id=Fn.join("", ["endpoint/", self.endpoint.attr_endpoint_name, f"/variant/{VARIANT}"]),
            min_capacity=min_instances.value_as_number,
            max_capacity=max_instances.value_as_number,
        )
        policy = appscaling.CfnScalingPolicy(
            self,
            "ScalingPolicy",
            policy_name="invocations-per-instance",
            policy_type="TargetTrackingScaling",
            scaling_target_id=target.ref,
            target_tracking_scaling_policy_configuration=appscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=TARGET_INVOCATIONS_PER_INSTANCE,
                predefined_metric_specification=appscaling.CfnScalingPolicy.PredefinedMetricSpecificationProperty(
                    predefined_metric_type="SageMakerVariantInvocationsPerInstance"
                ),
                scale_in_cooldown=300,
                scale_out_cooldown=60,
            ),
        )
        target.cfn_options.condition = scales
        policy.cfn_options.condition = scales

    def _execution_role(self) -> iam.Role:
        role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Image Similarity SageMaker model: pull the image, write logs and metrics, read images from S3",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[self.log_group.log_group_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            )
        )
        return role

    @property
    def integration(self) -> dict:
        """The POST method's integration when this backend is chosen (CloudFormation Integration property)."""
        uri = Fn.sub(
            "arn:${AWS::Partition}:apigateway:${AWS::Region}:runtime.sagemaker:path/endpoints/${Name}/invocations",
            {"Name": self.endpoint.attr_endpoint_name},
        )
        return {
            "Type": "AWS",
            "IntegrationHttpMethod": "POST",
            "Uri": uri,
            "Credentials": self.invoke_role.role_arn,
            "RequestParameters": {
                "integration.request.header.Content-Type": "'application/json'",
                "integration.request.header.Accept": "'application/json'",
            },
            "PassthroughBehavior": "WHEN_NO_MATCH",
            "TimeoutInMillis": 29_000,
            "IntegrationResponses": INTEGRATION_RESPONSES,
        }


def _suppress_findings(execution_role: iam.Role) -> None:
    acknowledge(
        execution_role,
        "cloudwatch:PutMetricData and ecr:GetAuthorizationToken have no resource-level permissions; metrics are "
        "limited to the SageMaker namespaces by a condition.",
        "AwsSolutions-IAM5[Resource::*]",
    )
