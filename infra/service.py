"""What both inference backends share: the service image, its environment and its S3 read access."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Aws, CfnCondition, CfnParameter, Fn, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from constructs import Construct


@dataclass(frozen=True)
class ServiceProps:
    """How to build and configure the service container, identical for both backends."""

    directory: Path
    """Docker build context holding the Dockerfile (the repository's `functions/`)."""
    allowed_s3_buckets: str
    """Comma-separated bucket names (a parameter value); empty means any bucket the role can read."""
    s3_object_arns: str
    """The same buckets as comma-separated object ARNs (see `s3_object_arns`), for IAM."""
    log_level: str = "INFO"

    def environment(self) -> dict[str, str]:
        return {"ALLOWED_S3_BUCKETS": self.allowed_s3_buckets, "LOG_LEVEL": self.log_level}


def service_image(scope: Construct, props: ServiceProps) -> ecr_assets.DockerImageAsset:
    """The one service image. Both backends build it from the same context, so the CLI builds and pushes it once.

    Built for x86_64 whatever the deployer's machine is: Lambda runs it as x86_64 and the CPU instance types offered
    for SageMaker are all x86_64. `cdk synth` only fingerprints the directory; Docker is needed at deploy time only.
    """
    return ecr_assets.DockerImageAsset(
        scope,
        "ServiceImage",
        directory=str(props.directory),
        file="Dockerfile",
        platform=ecr_assets.Platform.LINUX_AMD64,
        exclude=["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "*.egg-info"],
    )


def s3_object_arns(allowed_s3_buckets: str, has_allowed_s3_buckets: CfnCondition) -> str:
    """Comma-separated ARNs of the objects the service may read: those of the allowed buckets, or of every bucket.

    The parameter is a comma-separated string, so the list is built in CloudFormation:
    "a,b" -> "arn:*:s3:::a/*,arn:*:s3:::b/*". Fn::Join only takes a literal delimiter, so the named buckets' ARNs
    cannot embed AWS::Partition; their partition segment is a wildcard (IAM allows wildcards in any ARN segment,
    and the role only ever acts in its own partition). Nested stacks take the result as a CommaDelimitedList
    parameter (conditions cannot cross into nested stacks, values can).
    """
    named = Fn.join("", ["arn:*:s3:::", Fn.join("/*,arn:*:s3:::", Fn.split(",", allowed_s3_buckets)), "/*"])
    any_object = f"arn:{Aws.PARTITION}:s3:::*/*"
    return Fn.condition_if(has_allowed_s3_buckets.logical_id, named, any_object).to_string()


class S3ReadAccess(Construct):
    """A nested stack's view of `s3_object_arns`: its parameter, and the statement that grants s3:GetObject on it."""

    PARAMETER = "S3ObjectArns"

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.object_arns = CfnParameter(
            Stack.of(self),
            self.PARAMETER,
            type="CommaDelimitedList",
            description="ARNs of the S3 objects the service may read",
        )

    def statement(self) -> iam.PolicyStatement:
        return iam.PolicyStatement(actions=["s3:GetObject"], resources=self.object_arns.value_as_list)
