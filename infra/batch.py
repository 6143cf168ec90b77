"""Batch embedding nested stack: a Step Functions Distributed Map over an S3 prefix (or an S3 Inventory manifest)
whose child executions call the service image's batch entry point, one Parquet part per batch.

The run's input, defaults and output layout are in infra/batch_run.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, CfnParameter, Duration, Fn, NestedStack, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.batch_run import (
    BYTES_PER_BATCH,
    INPUT_RULES,
    INVENTORY_MAP,
    ITEMS_PER_BATCH,
    MAP_LABELS,
    PREFIX_MAP,
    RUN_MANIFEST,
    SETTINGS,
    VALID_INPUT,
)
from infra.checks import REDUNDANT_ROLE_DEPENDENCY, acknowledge, ignore_cfn_lint
from infra.function_logs import LOG_RETENTION, function_role_and_logs
from infra.service import S3ReadAccess, ServiceProps, service_image

BATCH_HANDLER = "image_similarity.adapters.batch_lambda.handler"
# At 1,769 MB a function has one vCPU; the worker is CPU-bound on the model, and Lambda's price per GB-second is
# flat, so this is the size with a whole vCPU at the lowest price per image (docs/BATCH.md, "Cost").
FUNCTION_MEMORY_MB = 1769
# A batch (ITEMS_PER_BATCH images at ~8 ms of CPU each, docs/BATCH.md) takes seconds; the timeout leaves room for
# slow reads. Three attempts of 90 s plus back-off stay inside the 5 minutes an Express child execution may run.
FUNCTION_TIMEOUT = Duration.seconds(90)
RETRY_ATTEMPTS = 2


@dataclass(frozen=True)
class BatchEmbeddingProps:
    service: ServiceProps
    s3_bucket_arns: str
    """Comma-separated ARNs of the buckets a run may list (see `s3_bucket_arns`)."""
    output_bucket: str
    """The one bucket runs may write to (the BatchOutputBucket parameter)."""


def s3_bucket_arns(allowed_s3_buckets: str, has_allowed_s3_buckets_id: str) -> str:
    """The buckets of `infra.service.s3_object_arns`, as bucket ARNs (for s3:ListBucket): same rules, same wildcard."""
    named = Fn.join("", ["arn:*:s3:::", Fn.join(",arn:*:s3:::", Fn.split(",", allowed_s3_buckets))])
    return Fn.condition_if(has_allowed_s3_buckets_id, named, "").to_string()


class BatchEmbedding(NestedStack):
    """The batch worker function and the state machine that fans an S3 prefix out to it."""

    BUCKET_ARNS_PARAMETER = "S3BucketArns"
    OUTPUT_BUCKET_PARAMETER = "OutputBucket"

    def __init__(self, scope: Construct, construct_id: str, *, props: BatchEmbeddingProps) -> None:
        super().__init__(
            scope,
            construct_id,
            description="Image Similarity: batch embedding (Step Functions Distributed Map)",
            parameters={
                S3ReadAccess.PARAMETER: props.service.s3_object_arns,
                self.BUCKET_ARNS_PARAMETER: props.s3_bucket_arns,
                self.OUTPUT_BUCKET_PARAMETER: props.output_bucket,
            },
        )
        # ResultWriterV2 is the writer that takes its bucket from the execution input.
        self.node.set_context("@aws-cdk/aws-stepfunctions:useDistributedMapResultWriterV2", True)
        bucket_arns = CfnParameter(
            self,
            self.BUCKET_ARNS_PARAMETER,
            type="String",
            description="Comma-separated ARNs of the buckets runs may list; empty: none",
        )
        output_bucket = CfnParameter(
            self, self.OUTPUT_BUCKET_PARAMETER, description="The bucket batch runs write their results to"
        )
        self.output_bucket = output_bucket.value_as_string
        self.output_objects = f"arn:{Aws.PARTITION}:s3:::{self.output_bucket}/*"
        self.function, read = self._worker(props.service)
        self.state_machine = self._state_machine(read, bucket_arns.value_as_string)

    @property
    def state_machine_arn(self) -> str:
        """Used from the parent stack, CDK turns it into an output of this nested stack."""
        return self.state_machine.state_machine_arn

    # -- the worker ------------------------------------------------------------------------------------------------
    def _worker(self, service: ServiceProps) -> tuple[lambda_.DockerImageFunction, S3ReadAccess]:
        role, log_group = function_role_and_logs(
            self, "Image Similarity batch worker: write its logs, read images, write Parquet parts to the output bucket"
        )
        # GetObjectVersion: inventory items may name an object version. No bucket named: no read at all.
        read = S3ReadAccess(self, "S3ReadAccess", role=role, actions=("s3:GetObject", "s3:GetObjectVersion"))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[self.output_objects]))
        acknowledge(
            role,
            "Parquet parts go under an output prefix chosen per run (an execution input), so the grant covers the "
            "objects of the one bucket named by the BatchOutputBucket parameter.",
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::<OutputBucket>/*]",
        )
        image = service_image(self, service)
        function = lambda_.DockerImageFunction(
            self,
            "Worker",
            description="Image Similarity batch worker: embeds one Distributed Map batch into one Parquet part",
            code=lambda_.DockerImageCode.from_ecr(image.repository, tag_or_digest=image.image_tag, cmd=[BATCH_HANDLER]),
            architecture=lambda_.Architecture.X86_64,
            memory_size=FUNCTION_MEMORY_MB,
            timeout=FUNCTION_TIMEOUT,
            role=role,
            log_group=log_group,
            environment=service.environment(),
        )
        ignore_cfn_lint(function.node.default_child, REDUNDANT_ROLE_DEPENDENCY, "W3005")
        return function, read

    # -- the state machine -----------------------------------------------------------------------------------------
    def _state_machine(self, read: S3ReadAccess, bucket_arns: str) -> sfn.StateMachine:
        invalid = sfn.Fail.jsonata(self, "InvalidInput", error="InvalidInput", cause=INPUT_RULES)
        settings = sfn.Pass.jsonata(self, "Settings", outputs=SETTINGS)
        manifest = tasks.CallAwsService.jsonata(
            self,
            "WriteRunManifest",
            service="s3",
            action="putObject",
            parameters={
                "Bucket": "{% $states.input.output_bucket %}",
                "Key": "{% $states.input.run_manifest_key %}",
                "Body": RUN_MANIFEST,
                "ContentType": "application/json",
            },
            iam_resources=[self.output_objects],
            outputs="{% $states.input %}",
        )
        listing = self._embed_map(
            PREFIX_MAP,
            sfn.S3ObjectsItemReader(
                bucket_name_path=sfn.JsonPath.string_at("$.input_bucket"),
                prefix=sfn.JsonPath.string_at("$.input_prefix"),
            ),
            manifest,
        )
        inventory = self._embed_map(
            INVENTORY_MAP,
            sfn.S3ManifestItemReader(
                bucket_name_path=sfn.JsonPath.string_at("$.inventory_bucket"),
                key=sfn.JsonPath.string_at("$.inventory_key"),
            ),
            manifest,
        )
        source = (
            sfn.Choice.jsonata(self, "Source")
            .when(sfn.Condition.jsonata("{% $states.input.inventory_bucket != '' %}"), inventory)
            .otherwise(listing)
        )
        # Any other bucket would be refused by IAM batch after batch; refusing it here says why, before any work.
        output_bucket_allowed = (
            sfn.Choice.jsonata(self, "CheckOutputBucket")
            .when(
                sfn.Condition.jsonata(f"{{% $states.input.output_bucket = '{self.output_bucket}' %}}"),
                settings.next(source),
            )
            .otherwise(
                sfn.Fail.jsonata(
                    self,
                    "OutputBucketNotAllowed",
                    error="OutputBucketNotAllowed",
                    cause=f"output_bucket must be {self.output_bucket}: this stack's BatchOutputBucket, the only "
                    "bucket its runs may write to.",
                )
            )
        )
        definition = (
            sfn.Choice.jsonata(self, "ValidateInput")
            .when(sfn.Condition.jsonata(VALID_INPUT), output_bucket_allowed)
            .otherwise(invalid)
        )

        role = iam.Role(
            self,
            "StateMachineRole",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="Image Similarity batch state machine: list and read the input, invoke the worker, write "
            "the map run's results and the run manifest to the output bucket",
        )
        # Step Functions adds its log group to the account's CloudWatch Logs resource policy (5,120 characters at most)
        # unless the group's name starts with /aws/vendedlogs/; the nested stack's id (its GUID) keeps it unique.
        log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            log_group_name=Fn.join(
                "", ["/aws/vendedlogs/states/image-similarity-batch-", Fn.select(2, Fn.split("/", Aws.STACK_ID))]
            ),
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.DESTROY,
        )
        state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            comment="Image Similarity batch embedding: docs/BATCH.md",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            # CDK would add its own grants (S3 on "*" for paths it cannot resolve); the role's policy below is the
            # whole of what the state machine may do.
            role=iam.Role.from_role_arn(self, "StateMachineRoleRef", role.role_arn, mutable=False),
            tracing_enabled=True,
            # Execution data holds S3 keys (items, results); the logs keep events, not data.
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        self._grant_state_machine(role, state_machine, read, bucket_arns)
        # CDK also builds a policy for the child executions; it cannot attach to the immutable role reference, so it
        # would never be deployed. The role's own policy grants the same actions (_grant_state_machine).
        state_machine.node.try_remove_child("DistributedMapPolicy")
        return state_machine

    def _embed_map(self, name: str, reader: sfn.IItemReader, then: sfn.IChainable) -> sfn.DistributedMap:
        """A Distributed Map of `reader`'s items in batches to the worker; its results under the output prefix."""
        embed_map = sfn.DistributedMap(
            self,
            name,
            item_reader=reader,
            item_batcher=sfn.ItemBatcher(
                max_items_per_batch=ITEMS_PER_BATCH,
                max_input_bytes_per_batch=BYTES_PER_BATCH,
                batch_input={
                    "input_bucket.$": "$.input_bucket",
                    "output_bucket.$": "$.output_bucket",
                    "output_prefix.$": "$.output_prefix",
                    "execution_name.$": "$.execution_name",
                },
            ),
            result_writer_v2=sfn.ResultWriterV2(
                bucket_name_path=sfn.JsonPath.string_at("$.output_bucket"),
                prefix=sfn.JsonPath.string_at("$.results_prefix"),
            ),
            max_concurrency_path="$.max_concurrency",
            tolerated_failure_percentage_path="$.tolerated_failure_percentage",
            # Express children: billed per request and duration, not per state transition, and a batch's retries
            # fit in their 5 minutes. The worker's parts are idempotent, as Express's at-least-once start requires.
            map_execution_type=sfn.StateMachineType.EXPRESS,
            label=name,
            result_path="$.map_run",
        )
        embed = tasks.LambdaInvoke(
            self,
            f"{name}Batch",
            lambda_function=self.function,
            payload_response_only=True,
            retry_on_service_exceptions=False,
        )
        # Every failure is retried the same way: a timeout or a throttle passes, a bad batch fails again quickly.
        embed.add_retry(
            errors=[sfn.Errors.ALL],
            interval=Duration.seconds(2),
            max_attempts=RETRY_ATTEMPTS,
            backoff_rate=2,
        )
        embed_map.item_processor(embed)
        # No Catch: a map run beyond its tolerated failures fails the execution at this state, which is what lets
        # `redrive-execution` re-run only the failed batches and then go on to the run manifest.
        return embed_map.next(then)

    def _grant_state_machine(
        self, role: iam.Role, state_machine: sfn.StateMachine, read: S3ReadAccess, bucket_arns: str
    ) -> None:
        # Listing the input, and the inventory manifest and its CSV files (objects of the readable buckets): only
        # when AllowedS3Buckets names buckets, as for the worker (IAM has no empty resource list).
        listing = iam.CfnPolicy(
            self,
            "ReadInputPolicy",
            policy_name="list-and-read-allowed-s3-buckets",
            roles=[role.role_name],
            policy_document={
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": Fn.split(",", bucket_arns)},
                    {
                        "Effect": "Allow",
                        "Action": "s3:GetObject",
                        "Resource": Fn.split(",", read.object_arns.value_as_string),
                    },
                ],
            },
        )
        listing.cfn_options.condition = read.condition
        # ResultWriter uploads in parts (and may abort them); the run manifest is one PutObject.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
                resources=[self.output_objects],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[self.function.function_arn],
            )
        )
        # A Distributed Map runs its batches as child executions of its own state machine; a redrive of a failed
        # run re-runs only the map run's failed batches.
        executions = (
            f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:execution:{state_machine.state_machine_name}"
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["states:StartExecution"], resources=[state_machine.state_machine_arn])
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution", "states:StopExecution"], resources=[f"{executions}:*"]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["states:RedriveExecution"], resources=[f"{executions}/{label}:*" for label in MAP_LABELS]
            )
        )
        acknowledge(
            role,
            "The input and output locations are execution inputs, so object grants cover the one output bucket "
            "(BatchOutputBucket); a map run's child executions and redrives are named by Step Functions at run time, "
            "so they are granted under this state machine's own executions; log deliveries and X-Ray have no "
            "resource-level permissions (Step Functions logging and tracing need them on *), and the log resource-"
            "policy look-ups are documented with the account's log groups as a wildcard.",
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::<OutputBucket>/*]",
            f"AwsSolutions-IAM5[Resource::{_nag_executions(state_machine)}:*]",
            *(f"AwsSolutions-IAM5[Resource::{_nag_executions(state_machine)}/{label}:*]" for label in MAP_LABELS),
            "AwsSolutions-IAM5[Resource::*]",
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:*]",
        )
        # Logging and tracing, as Step Functions documents them: log deliveries and X-Ray have no resource-level
        # permissions; the resource-policy and log-group look-ups take this account's log groups as a wildcard.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogDelivery",
                    "logs:GetLogDelivery",
                    "logs:UpdateLogDelivery",
                    "logs:DeleteLogDelivery",
                    "logs:ListLogDeliveries",
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                ],
                resources=["*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"],
                resources=[f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"],
            )
        )


def _nag_executions(state_machine: sfn.StateMachine) -> str:
    """This state machine's execution ARN prefix as cdk-nag prints it in its findings."""
    logical_id = Stack.of(state_machine).get_logical_id(state_machine.node.default_child)
    return f"arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:<{logical_id}.Name>"
