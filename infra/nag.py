"""cdk-nag acknowledgements: one reason per finding, recorded next to the construct it concerns."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, reason: str, *finding_ids: str) -> None:
    """Acknowledge each of `finding_ids` (e.g. "AwsSolutions-IAM5[Resource::*]") on `scope` for `reason`."""
    Validations.of(scope).acknowledge(*(Acknowledgment(id=finding_id, reason=reason) for finding_id in finding_ids))
