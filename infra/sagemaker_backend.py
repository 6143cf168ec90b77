"""SageMaker inference backend: the service image on a real-time endpoint behind an AWS integration."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, Fn, NestedStack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra.checks import acknowledge
from infra.service import S3ReadAccess, ServiceProps, service_image

CORS_ORIGIN = {"method.response.header.Access-Control-Allow-Origin": "'*'"}

# SageMaker answers a container's non-2xx response with its own 424 ModelError, whose JSON carries the container's
# status (OriginalStatusCode) and body (OriginalMessage). Unwrap it so clients see the container's 4xx and its
# {"message": ...} body, exactly as from the Lambda backend. A container 5xx stays a 502: the gateway's problem.
_MODEL_ERROR_TEMPLATE = """\
#set($status = $input.path('$.OriginalStatusCode'))
#if($status >= 400 && $status < 500)
#set($context.responseOverride.status = $status)
$input.path('$.OriginalMessage')
#else
#set($context.responseOverride.status = 502)
{"message": "The inference endpoint failed to answer. Retry later; see the endpoint's logs if it persists."}
#end"""

# SageMaker's own 4xx other than 424 (e.g. ValidationError) say what was wrong with the request. escapeJavaScript
# also turns ' into \', which JSON does not allow, hence the replaceAll.
_ENDPOINT_REJECTED_TEMPLATE = r"""#set($detail = $input.path('$.message'))
#if("$!detail" == "")#set($detail = $input.path('$.Message'))#end
{"message": "The inference endpoint rejected the request: $util.escapeJavaScript($detail).replaceAll("\\'", "'")"}"""

_ENDPOINT_FAILED_TEMPLATE = '{"message": "The inference endpoint is unavailable or overloaded. Retry later."}'


def _integration_response(status: str, selection_pattern: str | None = None, template: str | None = None) -> dict:
    response: dict = {"StatusCode": status, "ResponseParameters": CORS_ORIGIN}
    if selection_pattern is not None:
        response["SelectionPattern"] = selection_pattern
    if template is not None:
        response["ResponseTemplates"] = {"application/json": template}
    return response


# Selection patterns match the SageMaker runtime's HTTP status and must not overlap.
INTEGRATION_RESPONSES = [
    _integration_response("200"),  # no pattern: the default, the container's 200 body passes through
    _integration_response("400", "424", _MODEL_ERROR_TEMPLATE),
    _integration_response("400", r"4(?!24)\d{2}", _ENDPOINT_REJECTED_TEMPLATE),
    _integration_response("502", r"5\d{2}", _ENDPOINT_FAILED_TEMPLATE),
]


@dataclass(frozen=True)
class SageMakerBackendProps:
    service: ServiceProps
    instance_type: str
    """A parameter value."""


class SageMakerBackend(NestedStack):
    """Model, endpoint configuration and endpoint, plus the role API Gateway uses to invoke that endpoint only."""

    def __init__(self, scope: Construct, construct_id: str, *, props: SageMakerBackendProps) -> None:
        super().__init__(
            scope,
            construct_id,
            description="Image Similarity: SageMaker inference backend",
            parameters={S3ReadAccess.PARAMETER: props.service.s3_object_arns},
        )
        self.s3_access = S3ReadAccess(self, "S3ReadAccess")
        image = service_image(self, props.service)
        execution_role = self._execution_role(props)
        image.repository.grant_pull(execution_role)

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
                    initial_instance_count=1,
                    initial_variant_weight=1,
                )
            ],
        )
        self.endpoint = sagemaker.CfnEndpoint(self, "Endpoint", endpoint_config_name=config.attr_endpoint_config_name)

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

    def _execution_role(self, props: SageMakerBackendProps) -> iam.Role:
        role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Image Similarity SageMaker model: pull the image, write logs and metrics, read images from S3",
        )
        endpoint_logs = f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:/aws/sagemaker/Endpoints/*"
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[endpoint_logs],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            )
        )
        role.add_to_policy(self.s3_access.statement())
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
        "SageMaker names the endpoint's log group after the generated endpoint name, unknown to the policy.",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/Endpoints/*]",
    )
    acknowledge(
        execution_role,
        "cloudwatch:PutMetricData and ecr:GetAuthorizationToken have no resource-level permissions; metrics are "
        "limited to the SageMaker namespaces by a condition.",
        "AwsSolutions-IAM5[Resource::*]",
    )
