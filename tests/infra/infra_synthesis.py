"""Synthesizes the CDK app once per test run, exactly as `cdk synth` does (cdk.json context, cdk-nag on).

Not a conftest.py: pytest imports every conftest.py as the module `conftest`, and a second one here would shadow the
helpers that tests elsewhere import from tests/conftest.py. Test modules call `synthesize()`, which caches.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
if str(REPOSITORY) not in sys.path:
    sys.path.insert(0, str(REPOSITORY))

# What the CDK CLI adds to the app's context by default, so that the templates match `cdk synth` (CDKMetadata included).
CLI_CONTEXT = {
    "aws:cdk:enable-path-metadata": True,
    "aws:cdk:enable-asset-metadata": True,
    "aws:cdk:version-reporting": True,
}


def app_context() -> dict:
    """The context `cdk synth` gives app.py: cdk.json's, plus the CLI's defaults."""
    return {**json.loads((REPOSITORY / "cdk.json").read_text())["context"], **CLI_CONTEXT}


@dataclass(frozen=True)
class Synthesized:
    """The cloud assembly of one synthesis: root template, nested templates by their logical id in the root."""

    outdir: Path
    root: dict
    nested: dict[str, dict]
    template_paths: list[Path]
    validation_error: str | None
    validation_report: dict

    def nested_template(self, prefix: str) -> dict:
        """The nested template whose stack resource's logical id starts with `prefix` (e.g. "LambdaBackend")."""
        (template,) = [t for logical_id, t in self.nested.items() if logical_id.startswith(prefix)]
        return template


@functools.cache
def synthesize() -> Synthesized:
    # jsii prints a banner about Node 20 on every start; it is noise in test output.
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    from aws_cdk import App, NestedStack

    from infra.app import STACK_NAME, build_app

    outdir = Path(tempfile.mkdtemp(prefix="cdk.out-"))
    atexit.register(shutil.rmtree, outdir, ignore_errors=True)
    app = App(outdir=str(outdir), context=app_context())
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


@functools.cache
def deployments() -> list:
    """Every combination of the parameter matrix, evaluated once per test run (see cfn_matrix)."""
    from cfn_matrix import Deployment, combinations

    synthesized = synthesize()
    return [Deployment.evaluate(synthesized.root, synthesized.nested, c) for c in combinations(synthesized.root)]
