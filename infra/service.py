"""What both inference backends share: the service image, its environment and its S3 read access."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import CfnCondition, CfnParameter, Fn, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from constructs import Construct


@dataclass(frozen=True)
class ServiceProps:
    """How to build and configure the service container, identical for both backends."""

    directory: Path
    """Docker build context holding the Dockerfile (the repository's `functions/`)."""
    allowed_s3_buckets: str
    """Comma-separated bucket names (a parameter value); empty means no bucket."""
    s3_object_arns: str
    """The same buckets as comma-separated object ARNs (see `s3_object_arns`), for IAM; empty for no bucket."""
    log_level: str = "INFO"

    def environment(self) -> dict[str, str]:
        # Unlike the local CLI, where no list means any bucket the user's credentials reach, a deployment with no
        # list refuses s3:// URLs: its role may read nothing, and the caller learns which parameter to set.
        return {
            "ALLOWED_S3_BUCKETS": self.allowed_s3_buckets,
            "S3_URLS_NEED_ALLOWED_BUCKETS": "AllowedS3Buckets",
            "LOG_LEVEL": self.log_level,
        }


def service_image(scope: Construct, props: ServiceProps) -> ecr_assets.DockerImageAsset:
    """The one service image. Both backends build it from the same context, so the CLI builds and pushes it once.

    Built for x86_64 whatever the deployer's machine is: Lambda runs it as x86_64 and the CPU instance types offered
    for SageMaker are all x86_64. Built as a Docker (v2 schema 2) image, not an OCI one: Docker Engine 29 and Docker
    Desktop with the containerd image store push OCI manifests by default, which SageMaker's CreateModel rejects.
    `cdk synth` only fingerprints the directory; Docker is needed at deploy time only.
    """
    return ecr_assets.DockerImageAsset(
        scope,
        "ServiceImage",
        directory=str(props.directory),
        file="Dockerfile",
        platform=ecr_assets.Platform.LINUX_AMD64,
        outputs=["type=docker"],
        exclude=["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "*.egg-info"],
    )


def s3_object_arns(allowed_s3_buckets: str, has_allowed_s3_buckets: CfnCondition) -> str:
    """Comma-separated ARNs of the objects the service may read: those of the allowed buckets, or none (empty).

    The parameter is a comma-separated string, so the list is built in CloudFormation:
    "a,b" -> "arn:*:s3:::a/*,arn:*:s3:::b/*". Fn::Join only takes a literal delimiter, so the named buckets' ARNs
    cannot embed AWS::Partition; their partition segment is a wildcard (IAM allows wildcards in any ARN segment,
    and the role only ever acts in its own partition). Nested stacks take the result as a String parameter and
    derive their own condition from it (conditions cannot cross into nested stacks, values can).
    """
    named = Fn.join("", ["arn:*:s3:::", Fn.join("/*,arn:*:s3:::", Fn.split(",", allowed_s3_buckets)), "/*"])
    return Fn.condition_if(has_allowed_s3_buckets.logical_id, named, "").to_string()


class S3ReadAccess(Construct):
    """A nested stack's view of `s3_object_arns`: its parameter, and a policy granting s3:GetObject on those objects
    to `role`, which exists only when buckets are named (IAM has no empty resource list)."""

    PARAMETER = "S3ObjectArns"

    def __init__(
        self, scope: Construct, construct_id: str, *, role: iam.IRole, actions: tuple[str, ...] = ("s3:GetObject",)
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.object_arns = CfnParameter(
            stack,
            self.PARAMETER,
            type="String",
            default="",
            description="Comma-separated ARNs of the S3 objects the service may read; empty: none",
        )
        self.condition = CfnCondition(
            stack,
            "ReadsS3Objects",
            expression=Fn.condition_not(Fn.condition_equals(self.object_arns.value_as_string, "")),
        )
        self.policy = iam.CfnPolicy(
            self,
            "Policy",
            policy_name="read-allowed-s3-objects",
            roles=[role.role_name],
            policy_document={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": list(actions) if len(actions) > 1 else actions[0],
                        "Resource": Fn.split(",", self.object_arns.value_as_string),
                    }
                ],
            },
        )
        self.policy.cfn_options.condition = self.condition
