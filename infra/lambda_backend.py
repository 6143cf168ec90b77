"""Lambda inference backend: the service image as a container-image function behind a Lambda proxy integration."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, CfnCondition, CfnParameter, Duration, Fn, NestedStack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.api import invoked_by_api, lambda_proxy_integration
from infra.checks import REDUNDANT_ROLE_DEPENDENCY, ignore_cfn_lint
from infra.function_logs import function_role_and_logs
from infra.service import S3ReadAccess, ServiceProps, service_image

# API Gateway gives up after 29 s; the function stops a little earlier so the client gets its answer, not a 504.
FUNCTION_TIMEOUT = Duration.seconds(28)


@dataclass(frozen=True)
class LambdaBackendProps:
    service: ServiceProps
    memory_size: int | float
    """MB; a parameter value."""
    reserved_concurrency: str
    """A parameter value; 0 means no reservation."""
    invoke_source_arn: str
    """execute-api ARN pattern of the method allowed to invoke the function."""


class LambdaBackend(NestedStack):
    """The inference function, its role and its log group."""

    def __init__(self, scope: Construct, construct_id: str, *, props: LambdaBackendProps) -> None:
        super().__init__(
            scope,
            construct_id,
            description="Image Similarity: Lambda inference backend",
            parameters={
                S3ReadAccess.PARAMETER: props.service.s3_object_arns,
                "ReservedConcurrency": props.reserved_concurrency,
            },
        )
        role, log_group = function_role_and_logs(
            self, "Image Similarity inference function: write its logs, read images from the allowed S3 buckets"
        )
        self.s3_access = S3ReadAccess(self, "S3ReadAccess", role=role)
        reserved = CfnParameter(
            self,
            "ReservedConcurrency",
            type="Number",
            min_value=0,
            description="Concurrent executions reserved for the function; 0: none",
        )
        reserves = CfnCondition(
            self, "ReservesConcurrency", expression=Fn.condition_not(Fn.condition_equals(reserved.value_as_string, "0"))
        )

        image = service_image(self, props.service)
        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            description="Image Similarity inference (POST /image-similarity)",
            code=lambda_.DockerImageCode.from_ecr(image.repository, tag_or_digest=image.image_tag),
            architecture=lambda_.Architecture.X86_64,
            memory_size=props.memory_size,
            timeout=FUNCTION_TIMEOUT,
            role=role,
            log_group=log_group,
            environment=props.service.environment(),
        )
        function = self.function.node.default_child
        # Lambda's own 0 would throttle every call; here 0 means "no reservation".
        function.add_property_override(
            "ReservedConcurrentExecutions", Fn.condition_if(reserves.logical_id, reserved.value_as_number, Aws.NO_VALUE)
        )
        ignore_cfn_lint(function, REDUNDANT_ROLE_DEPENDENCY, "W3005")
        invoked_by_api(self.function, props.invoke_source_arn)

    @property
    def integration(self) -> dict:
        """The POST method's integration when this backend is chosen (CloudFormation Integration property)."""
        return lambda_proxy_integration(self.function, timeout_ms=29_000)
