"""cfn-lint over every synthesized template, and cdk-nag's AwsSolutions pack with reasons for what it accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file
from infra_synthesis import REPOSITORY, app_context

# Both partitions the product page targets: China regions catch hard-coded "aws" partitions and domains.
REGIONS = ["us-east-1", "cn-north-1", "cn-northwest-1"]
GENERIC_REASON_WORDS = {"", "n/a", "ok", "not needed", "false positive", "suppressed"}


def test_every_template_was_written(synthesized):
    names = [p.name for p in synthesized.template_paths]
    assert len(names) == 1 + len(synthesized.nested)


def test_cfn_lint_reports_nothing(synthesized):
    findings = [
        f"{path.name}: {match}"
        for path in synthesized.template_paths
        for match in lint_file(path, ManualArgs(regions=REGIONS))
    ]
    assert findings == []


def test_cfn_lint_ignores_are_resource_level_and_only_the_redundant_dependency(synthesized):
    """Only W3005 (CDK's DependsOn on a role that a GetAtt already implies) is ignored, per resource."""
    for template in [synthesized.root, *synthesized.nested.values()]:
        for resource in template["Resources"].values():
            config = resource.get("Metadata", {}).get("cfn-lint", {}).get("config", {})
            assert config.get("ignore_checks", ["W3005"]) == ["W3005"]
            if config:
                assert resource["Type"] == "AWS::Lambda::Function"
    assert "cfn-lint" not in json.dumps(synthesized.root.get("Metadata", {}))


def test_cdk_nag_aws_solutions_has_no_unacknowledged_findings(synthesized):
    assert synthesized.validation_error is None
    violations = [v for report in synthesized.validation_report["pluginReports"] for v in report["violations"]]
    assert violations == []


def _acknowledgements(synthesized) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for path in synthesized.outdir.glob("*.metadata.json"):
        for construct_path, entries in json.loads(path.read_text()).items():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    found.setdefault(construct_path, {}).update(entry["data"])
    return found


def test_cdk_nag_acknowledgements_each_have_a_specific_reason(synthesized):
    acknowledgements = _acknowledgements(synthesized)
    assert acknowledgements, "expected the acknowledgements to be recorded in the assembly"
    for construct_path, rules in acknowledgements.items():
        for rule, reason in rules.items():
            assert "AwsSolutions-" in rule or "CloudFormation-Validate::" in rule, (construct_path, rule)
            assert reason.strip().lower() not in GENERIC_REASON_WORDS and len(reason) >= 40, (construct_path, rule)


@pytest.mark.parametrize("rule", ["AwsSolutions-IAM5[Resource::*]", "AwsSolutions-IAM4"])
def test_broad_acknowledgements_are_scoped_to_single_constructs(synthesized, rule):
    holders = [
        p for p, rules in _acknowledgements(synthesized).items() if any(r.endswith(rule) or rule in r for r in rules)
    ]
    assert all(p.count("/") >= 2 for p in holders), holders  # never on the stack or the app


def test_cdk_json_runs_app_py_with_python3():
    config = json.loads((REPOSITORY / "cdk.json").read_text())
    assert config["app"] == "python3 app.py"


def test_app_py_synthesizes_what_the_tests_check(synthesized, tmp_path):
    """app.py run as the CLI runs it (CDK_OUTDIR, context from cdk.json), without Docker or AWS credentials."""
    import os
    import subprocess
    import sys

    context = app_context()
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_") and key != "DOCKER_HOST"}
    env.update(CDK_OUTDIR=str(tmp_path), CDK_CONTEXT_JSON=json.dumps(context), DOCKER_HOST="unix:///nonexistent")
    subprocess.run([sys.executable, "app.py"], cwd=REPOSITORY, env=env, check=True, capture_output=True, timeout=300)
    for path in synthesized.template_paths:
        assert _without_asset_hashes(tmp_path / path.name) == _without_asset_hashes(path), path.name


def _without_asset_hashes(template: Path) -> str:
    # Asset hashes follow the files under functions/, which may change between two synths of a working tree.
    return re.sub(r"[0-9a-f]{64}", "<asset hash>", template.read_text())
