"""API Explorer nested stack: a small zip Lambda (standard library only) that serves Swagger UI and the API document.

The zip is a handful of files copied from the service package at synthesis (no Docker, no pip): the explorer module,
its Lambda adapter, the OpenAPI document and the vendored Swagger UI assets.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import jsii
from aws_cdk import (
    AssetHashType,
    BundlingOptions,
    DockerImage,
    Duration,
    ILocalBundling,
    NestedStack,
)
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.api import invoked_by_api, lambda_proxy_integration
from infra.checks import REDUNDANT_ROLE_DEPENDENCY, acknowledge, ignore_cfn_lint
from infra.function_logs import function_role_and_logs

HANDLER = "image_similarity.adapters.explorer_lambda.handler"
SERVICE_PYTHON = lambda_.Runtime.PYTHON_3_13
# Paths under functions/ that the explorer imports or serves; nothing else of the service goes into its zip.
CODE_FILES = (
    "image_similarity/__init__.py",
    "image_similarity/adapters/explorer_page.py",
    "image_similarity/openapi.json",
    "image_similarity/swagger_ui",
    "image_similarity/adapters/__init__.py",
    "image_similarity/adapters/explorer_lambda.py",
)


@jsii.implements(ILocalBundling)
class _CopyFiles:
    """Local bundling that copies `CODE_FILES` from the source directory: always succeeds, so Docker is never used."""

    def __init__(self, source: Path) -> None:
        self._source = source

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options) -> bool:
        for relative in CODE_FILES:
            source, target = self._source / relative, Path(output_dir) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)
        return True


def explorer_code(service_directory: Path) -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(service_directory),
        # The asset is what the zip holds, so changes elsewhere in functions/ (the model, other modules) leave it be.
        asset_hash_type=AssetHashType.OUTPUT,
        bundling=BundlingOptions(
            image=DockerImage.from_registry("unused-local-bundling-always-succeeds"),
            local=_CopyFiles(service_directory),
        ),
    )


@dataclass(frozen=True)
class ApiExplorerProps:
    service_directory: Path
    """The repository's `functions/`, holding the `image_similarity` package."""
    authorization: str
    """APIGatewayAuthorization (a parameter value): NONE keeps "Try it out", AWS_IAM makes the page reference only."""
    image_similarity: str
    """ImageSimilarity (a parameter value, yes/no): whether the page lists the operation."""
    image_search: str
    """ImageSearch (a parameter value, yes/no): whether the page lists the /collections operations."""
    invoke_source_arn: str
    """execute-api ARN pattern of the explorer's methods."""


class ApiExplorer(NestedStack):
    """The explorer function, its role and its log group."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ApiExplorerProps) -> None:
        super().__init__(scope, construct_id, description="Image Similarity: API Explorer (Swagger UI)")
        role, log_group = function_role_and_logs(self, "API Explorer function: write its logs")
        self.function = lambda_.Function(
            self,
            "ExplorerFunction",  # unlike the Lambda backend's "Function", so logical ids never coincide across stacks
            description="API Explorer: Swagger UI and the OpenAPI document (GET /api-explorer)",
            # The same Python as the service image, and x86_64: both are offered in every Region the stack targets,
            # the China Regions included, where new runtimes arrive later (docs/DEPLOYMENT.md).
            runtime=SERVICE_PYTHON,
            architecture=lambda_.Architecture.X86_64,
            handler=HANDLER,
            code=explorer_code(props.service_directory),
            memory_size=256,
            timeout=Duration.seconds(10),
            role=role,
            log_group=log_group,
            environment={
                "EXPLORER_AUTHORIZATION": props.authorization,
                "EXPLORER_IMAGE_SIMILARITY": props.image_similarity,
                "EXPLORER_IMAGE_SEARCH": props.image_search,
            },
        )
        ignore_cfn_lint(self.function.node.default_child, REDUNDANT_ROLE_DEPENDENCY, "W3005")
        acknowledge(
            self.function,
            "Python 3.13, supported by Lambda until 2029, is the service image's Python too; the newest runtime "
            "reaches the China Regions later than the others, and the stack must deploy there.",
            "AwsSolutions-L1",
        )
        invoked_by_api(self.function, props.invoke_source_arn)

    @property
    def integration(self) -> dict:
        """The GET methods' integration (CloudFormation Integration property)."""
        return lambda_proxy_integration(self.function)
