"""Optional CloudWatch alarms (the Alarms parameter): the stage's 5xx rate and p99 latency, the function's throttles."""

from __future__ import annotations

from aws_cdk import Aws, CfnCondition, Fn
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from infra.checks import acknowledge

# A 5-minute window is long enough to ignore a single failed call and short enough to page within minutes.
PERIOD_SECONDS = 300
MAX_5XX_RATE = 0.05  # the 5XXError metric's average is the share of requests answered 5xx
# The function answers within 28 s; a p99 over 10 s means slow image URLs or a saturated backend.
MAX_P99_LATENCY_MS = 10_000


class Alarms(Construct):
    """Alarms that exist under `condition`; each notifies `topic_arn` when `has_topic` holds."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        api_name: str,
        stage_name: str,
        condition: CfnCondition,
        topic_arn: str,
        has_topic: CfnCondition,
    ) -> None:
        super().__init__(scope, construct_id)
        # An empty list (the NoValue element drops out) when no topic is given.
        self._actions = [Fn.condition_if(has_topic.logical_id, topic_arn, Aws.NO_VALUE)]
        api = [
            cloudwatch.CfnAlarm.DimensionProperty(name="ApiName", value=api_name),
            cloudwatch.CfnAlarm.DimensionProperty(name="Stage", value=stage_name),
        ]
        self._alarm(
            "ServerErrorRate",
            condition,
            "Share of Image Similarity API requests answered 5xx over 5 minutes",
            metric_name="5XXError",
            namespace="AWS/ApiGateway",
            dimensions=api,
            statistic="Average",
            threshold=MAX_5XX_RATE,
        )
        self._alarm(
            "LatencyP99",
            condition,
            "p99 latency of the Image Similarity API over 5 minutes (ms)",
            metric_name="Latency",
            namespace="AWS/ApiGateway",
            dimensions=api,
            extended_statistic="p99",
            threshold=MAX_P99_LATENCY_MS,
        )

    def add_function_throttles(self, function_name: str, condition: CfnCondition) -> None:
        """Any throttled invocation of the inference function: its reserved concurrency or the account's is used up."""
        self._alarm(
            "FunctionThrottles",
            condition,
            "Throttled invocations of the Image Similarity inference function over 5 minutes",
            metric_name="Throttles",
            namespace="AWS/Lambda",
            dimensions=[cloudwatch.CfnAlarm.DimensionProperty(name="FunctionName", value=function_name)],
            statistic="Sum",
            threshold=0,
        )

    def _alarm(self, construct_id: str, condition: CfnCondition, description: str, **metric) -> None:
        alarm = cloudwatch.CfnAlarm(
            self,
            construct_id,
            alarm_description=description,
            comparison_operator="GreaterThanThreshold",
            evaluation_periods=1,
            period=PERIOD_SECONDS,
            # No traffic is no failure.
            treat_missing_data="notBreaching",
            **metric,
        )
        alarm.add_property_override("AlarmActions", self._actions)
        alarm.add_property_override("OKActions", self._actions)
        alarm.cfn_options.condition = condition
        acknowledge(
            alarm,
            "CDK's template validator reads the AWS::NoValue of the actions' Fn::If as an empty ARN; CloudFormation "
            "drops it, leaving no action (allowed) when AlarmTopicArn is empty.",
            "CloudFormation-Validate::F3033",
        )
