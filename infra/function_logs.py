"""What every Lambda function of the app gets: its own log group with a retention, and a role that may write it."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

LOG_RETENTION = logs.RetentionDays.ONE_MONTH


def function_role_and_logs(scope: Construct, description: str) -> tuple[iam.Role, logs.LogGroup]:
    """An explicit log group gives the logs a retention and lets them go away with the function's stack."""
    log_group = logs.LogGroup(scope, "Logs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY)
    role = iam.Role(scope, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description)
    log_group.grant_write(role)
    return role, log_group
