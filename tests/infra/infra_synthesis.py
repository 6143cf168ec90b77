"""Synthesizes the CDK app once per test session, exactly as `cdk synth` does (cdk.json context, cdk-nag on)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
if str(REPOSITORY) not in sys.path:
    sys.path.insert(0, str(REPOSITORY))

# jsii prints a banner about Node 20 on every start; it is noise in test output.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


# What the CDK CLI adds to the app's context by default, so that the templates match `cdk synth` (CDKMetadata included).
CLI_CONTEXT = {
    "aws:cdk:enable-path-metadata": True,
    "aws:cdk:enable-asset-metadata": True,
    "aws:cdk:version-reporting": True,
}


@dataclass
class Synthesized:
    """The cloud assembly of one synthesis: root template, nested templates by their logical id in the root."""

    outdir: Path
    root: dict
    nested: dict[str, dict]
    template_paths: list[Path]
    validation_error: str | None
    validation_report: dict = field(default_factory=dict)


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    from aws_cdk import App, NestedStack

    from infra.app import STACK_NAME, build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    context = json.loads((REPOSITORY / "cdk.json").read_text())["context"]
    context.update(CLI_CONTEXT)
    app = App(outdir=str(outdir), context=context)
    stack = build_app(app)
    validation_error = None
    try:
        app.synth()
    except RuntimeError as error:  # cdk-nag findings fail the synthesis after the templates are written
        validation_error = str(error)

    nested = {
        stack.resolve(construct.nested_stack_resource.logical_id): json.loads(
            (outdir / construct.template_file).read_text()
        )
        for construct in stack.node.find_all()
        if isinstance(construct, NestedStack)
    }
    report_path = outdir / "validation-report.json"
    return Synthesized(
        outdir=outdir,
        root=json.loads((outdir / f"{STACK_NAME}.template.json").read_text()),
        nested=nested,
        template_paths=sorted(outdir.glob("*.template.json")),
        validation_error=validation_error,
        validation_report=json.loads(report_path.read_text()) if report_path.exists() else {},
    )


@pytest.fixture(scope="session")
def root(synthesized: Synthesized) -> dict:
    return synthesized.root


def _nested(synthesized: Synthesized, prefix: str) -> dict:
    (template,) = [t for logical_id, t in synthesized.nested.items() if logical_id.startswith(prefix)]
    return template


@pytest.fixture(scope="session")
def lambda_template(synthesized: Synthesized) -> dict:
    return _nested(synthesized, "LambdaBackend")


@pytest.fixture(scope="session")
def sagemaker_template(synthesized: Synthesized) -> dict:
    return _nested(synthesized, "SageMakerBackend")
