"""Static-check findings we accept, each with its reason, recorded next to the construct it concerns."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnResource, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, reason: str, *finding_ids: str) -> None:
    """Acknowledge cdk-nag findings (e.g. "AwsSolutions-IAM5[Resource::*]") on `scope` for `reason`."""
    Validations.of(scope).acknowledge(*(Acknowledgment(id=finding_id, reason=reason) for finding_id in finding_ids))


def ignore_cfn_lint(resource: CfnResource, reason: str, *rule_ids: str) -> None:
    """Make cfn-lint skip `rule_ids` on this one resource; `reason` documents why at the call site."""
    del reason  # cfn-lint's resource metadata has no place for it
    resource.add_metadata("cfn-lint", {"config": {"ignore_checks": list(rule_ids)}})


REDUNDANT_ROLE_DEPENDENCY = (
    "W3005: CDK makes a function DependsOn its role and the role's policy so that the policy exists before the "
    "first invocation; the policy part is needed, the role part repeats the Role GetAtt and is harmless."
)
