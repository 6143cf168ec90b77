"""Builds the CDK app; `app.py` and the tests share it, so the tests check what users deploy."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra.stack import ImageSimilarityStack

REPOSITORY = Path(__file__).resolve().parent.parent
STACK_NAME = "ImageSimilarity"


def build_app(app: App, *, service_directory: Path = REPOSITORY / "functions") -> ImageSimilarityStack:
    """Add the root stack to `app`, with cdk-nag's AwsSolutions checks on every stack."""
    stack = ImageSimilarityStack(
        app,
        STACK_NAME,
        service_directory=service_directory,
        description="Image Similarity API: image embeddings and similarity behind API Gateway",
    )
    # Any finding that is not acknowledged with a reason (infra.nag.acknowledge) fails the synthesis.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return stack
