"""CloudFormation parameters of the root stack, the conditions derived from them, and how conditions are applied.

Everything a user can change in the console lives here, so the matrix tests and the docs have one place to read.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnCondition, CfnOutput, CfnParameter, CfnResource, Fn, Stack
from constructs import Construct

# Bucket names as S3 allows them, comma-separated, no spaces; empty means "no bucket": s3:// URLs are refused.
_BUCKET_LIST_PATTERN = r"^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](,[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])*$"
# The list reaches the container as an environment value, which SageMaker's CreateModel caps at 1,024 bytes.
MAX_ALLOWED_S3_BUCKETS_LENGTH = 1024
# Lambda's documented maximum is 10,240 MB, but new accounts may be held at 3,008 MB until AWS raises their quota;
# a value above what the account allows fails the deployment, so the parameter stays within what every account has.
MAX_LAMBDA_MEMORY_MB = 3008
# Lambda keeps 100 concurrent executions unreserved per account; a reservation that would cut into them is refused.
DEFAULT_RESERVED_CONCURRENCY = 10
MAX_SAGEMAKER_INSTANCES = 10
_ARN_OR_EMPTY = r"^$|^arn:aws[a-z-]*:{service}:[a-z0-9-]+:[0-9]{{12}}:.+$"
_DOMAIN_OR_EMPTY = r"^$|^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"

# CPU instance types only: the service image runs onnxruntime on CPU, a GPU would sit idle.
SAGEMAKER_INSTANCE_TYPES = (
    "ml.c5.large",
    "ml.c5.xlarge",
    "ml.c5.2xlarge",
    "ml.c5.4xlarge",
    "ml.m5.large",
    "ml.m5.xlarge",
    "ml.m5.2xlarge",
    "ml.c6i.large",
    "ml.c6i.xlarge",
    "ml.c6i.2xlarge",
)


@dataclass(frozen=True)
class ParameterGroup:
    """A console group of parameters (AWS::CloudFormation::Interface)."""

    label: str
    parameters: tuple[CfnParameter, ...]


class Parameters(Construct):
    """The root stack's parameters, with console labels and groups.

    Construct ids are the parameters' logical ids, so they are the names users pass to `cdk deploy --parameters`.
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self._labels: dict[str, str] = {}
        self.image_similarity = self._parameter(
            stack,
            "ImageSimilarity",
            "Image Similarity",
            "Deploy the Image Similarity API (POST /image-similarity). Set to no on an existing stack to uninstall it.",
            default="yes",
            allowed_values=["yes", "no"],
        )
        self.api_explorer = self._parameter(
            stack,
            "APIExplorer",
            "API Explorer",
            "Deploy the API Explorer: a Swagger UI page (GET /api-explorer/) to read the API and, when "
            "APIGatewayAuthorization is NONE, try it online. The page itself needs no IAM signature.",
            default="yes",
            allowed_values=["yes", "no"],
        )
        self.image_search = self._parameter(
            stack,
            "ImageSearch",
            "Image Search",
            "Deploy Image Search (/collections/*): collections of image embeddings in an Amazon S3 Vectors vector "
            "bucket, searched by image or vector. Set to no to remove the routes and the search function; the vector "
            "bucket and its collections are kept (docs/SEARCH_AWS.md).",
            default="no",
            allowed_values=["yes", "no"],
        )
        self.inference_backend = self._parameter(
            stack,
            "InferenceBackend",
            "Inference backend",
            "Where the model runs: Lambda (pay per request, cold starts) or SageMaker (an always-on real-time "
            "endpoint, billed per instance hour).",
            default="Lambda",
            allowed_values=["Lambda", "SageMaker"],
        )
        self.authorization = self._parameter(
            stack,
            "APIGatewayAuthorization",
            "API Gateway authorization",
            "NONE: anyone with the URL may call the API (needed for 'Try it out' in the API Explorer). AWS_IAM: "
            "callers sign requests with SigV4 and need execute-api:Invoke. In the China Regions (Beijing, Ningxia), "
            "calls that are not signed get 403 unless the account has an ICP licence: use AWS_IAM there, or a custom "
            "domain with an ICP filing.",
            # The product's documented default (SPEC, product page); docs/SECURITY.md says how to lock it down.
            default="NONE",
            allowed_values=["NONE", "AWS_IAM"],
        )
        self.stage_name = self._parameter(
            stack,
            "APIGatewayStageName",
            "API Gateway stage name",
            "Name of the API Gateway stage; it is the first path segment of every URL.",
            default="prod",
            allowed_pattern=r"^[A-Za-z0-9_-]{1,128}$",
            constraint_description="letters, digits, hyphens and underscores, at most 128 characters",
        )
        self.lambda_memory_size = self._parameter(
            stack,
            "LambdaMemorySize",
            "Lambda memory (MB)",
            "Memory of the inference function when InferenceBackend is Lambda; Lambda's CPU share grows with it. "
            f"At most {MAX_LAMBDA_MEMORY_MB} MB: new accounts are refused more until AWS raises their Lambda memory "
            "quota.",
            type="Number",
            default="1769",
            min_value=1024,
            max_value=MAX_LAMBDA_MEMORY_MB,
        )
        self.lambda_reserved_concurrency = self._parameter(
            stack,
            "LambdaReservedConcurrency",
            "Lambda reserved concurrency",
            "Concurrent executions reserved for, and the most allowed to, the inference function, so that slow image "
            "URLs cannot use up the account's Lambda concurrency. 0: no reservation (the function shares the "
            "account's pool). Lambda keeps 100 executions unreserved, so accounts with a concurrency quota below "
            "100 + this value (new accounts) must use 0.",
            type="Number",
            default=str(DEFAULT_RESERVED_CONCURRENCY),
            min_value=0,
            max_value=1000,
        )
        self.sagemaker_instance_type = self._parameter(
            stack,
            "SageMakerInstanceType",
            "SageMaker instance type",
            "Instance type of the real-time endpoint when InferenceBackend is SageMaker (CPU). Each type has its own "
            "Service Quotas entry '<type> for endpoint usage', often 0 in a new account: check it first.",
            default="ml.c5.xlarge",
            allowed_values=list(SAGEMAKER_INSTANCE_TYPES),
        )
        self.sagemaker_min_instances = self._parameter(
            stack,
            "SageMakerMinInstanceCount",
            "SageMaker minimum instances",
            "Instances the SageMaker endpoint starts with and never goes below.",
            type="Number",
            default="1",
            min_value=1,
            max_value=MAX_SAGEMAKER_INSTANCES,
        )
        self.sagemaker_max_instances = self._parameter(
            stack,
            "SageMakerMaxInstanceCount",
            "SageMaker maximum instances",
            "Above SageMakerMinInstanceCount, target-tracking auto scaling adds instances up to this count when "
            "invocations per instance grow; never below the minimum. Equal to the minimum (the default): no auto "
            "scaling.",
            type="Number",
            default="1",
            min_value=1,
            max_value=MAX_SAGEMAKER_INSTANCES,
        )
        self.allowed_s3_buckets = self._parameter(
            stack,
            "AllowedS3Buckets",
            "Allowed S3 buckets",
            "Comma-separated bucket names that s3:// image URLs may point to (no spaces), at most "
            f"{MAX_ALLOWED_S3_BUCKETS_LENGTH} characters (SageMaker's limit for a container environment value). Empty: "
            "s3:// URLs are refused with 403 and the inference role may read no bucket.",
            default="",
            allowed_pattern=_BUCKET_LIST_PATTERN,
            max_length=MAX_ALLOWED_S3_BUCKETS_LENGTH,
            constraint_description="comma-separated S3 bucket names without spaces, or empty",
        )
        self.custom_domain_name = self._parameter(
            stack,
            "CustomDomainName",
            "Custom domain name",
            "Optional domain (e.g. api.example.com) that serves the stage, as a regional API Gateway custom domain; "
            "point a CNAME at the CustomDomainTarget output. Needs CertificateArn. In the China Regions this is how an "
            "ICP-filed domain exposes the API. Empty: none.",
            default="",
            allowed_pattern=_DOMAIN_OR_EMPTY,
            constraint_description="a lower-case domain name such as api.example.com, or empty",
        )
        self.certificate_arn = self._parameter(
            stack,
            "CertificateArn",
            "Certificate ARN",
            "ACM certificate for CustomDomainName, in this stack's Region (or, in the China Regions, an IAM server "
            "certificate ARN). Empty when CustomDomainName is empty.",
            default="",
            allowed_pattern=r"^$|^arn:aws[a-z-]*:(acm|iam):[a-z0-9-]*:[0-9]{12}:.+$",
            constraint_description="an ACM (or IAM server) certificate ARN, or empty",
        )
        self.web_acl_arn = self._parameter(
            stack,
            "WebACLArn",
            "AWS WAF web ACL ARN",
            "Optional AWS WAF (v2) web ACL with REGIONAL scope to associate with the stage. Empty: none.",
            default="",
            allowed_pattern=_ARN_OR_EMPTY.format(service="wafv2"),
            constraint_description="a WAFv2 regional web ACL ARN, or empty",
        )
        self.cloudwatch_role = self._parameter(
            stack,
            "APIGatewayCloudWatchRole",
            "API Gateway CloudWatch role",
            "create: this stack makes the Region's API Gateway logging role and sets it in the account's API Gateway "
            "settings (one per Region and account; the role goes with the stack, the setting stays). existing: the "
            "Region already has one (API Gateway console, Settings) and this stack leaves it alone.",
            default="create",
            allowed_values=["create", "existing"],
        )
        self.alarms = self._parameter(
            stack,
            "Alarms",
            "CloudWatch alarms",
            "yes: CloudWatch alarms on the stage's 5xx rate and p99 latency, and on the inference function's "
            "throttles (Lambda backend). Each alarm is billed monthly.",
            default="no",
            allowed_values=["yes", "no"],
        )
        self.alarm_topic_arn = self._parameter(
            stack,
            "AlarmTopicArn",
            "Alarm SNS topic ARN",
            "Optional SNS topic the alarms notify when they fire and when they recover. Empty: the alarms only show in "
            "the CloudWatch console.",
            default="",
            allowed_pattern=_ARN_OR_EMPTY.format(service="sns"),
            constraint_description="an SNS topic ARN, or empty",
        )
        self.batch_embedding = self._parameter(
            stack,
            "BatchEmbedding",
            "Batch embedding",
            "Deploy batch embedding: a Step Functions state machine that embeds every image under an S3 prefix into "
            "Parquet files (docs/BATCH.md). Needs BatchOutputBucket.",
            default="no",
            allowed_values=["yes", "no"],
        )
        self.batch_output_bucket = self._parameter(
            stack,
            "BatchOutputBucket",
            "Batch output bucket",
            "The one bucket batch runs may write their Parquet files and run manifests to (required when "
            "BatchEmbedding is yes). Runs read images from AllowedS3Buckets.",
            default="",
            allowed_pattern=r"^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
            constraint_description="an S3 bucket name, or empty",
        )
        self.groups = [
            ParameterGroup(
                "Features", (self.image_similarity, self.api_explorer, self.image_search, self.batch_embedding)
            ),
            ParameterGroup(
                "Inference",
                (
                    self.inference_backend,
                    self.lambda_memory_size,
                    self.lambda_reserved_concurrency,
                    self.sagemaker_instance_type,
                    self.sagemaker_min_instances,
                    self.sagemaker_max_instances,
                ),
            ),
            ParameterGroup(
                "API Gateway",
                (
                    self.authorization,
                    self.stage_name,
                    self.custom_domain_name,
                    self.certificate_arn,
                    self.web_acl_arn,
                    self.cloudwatch_role,
                ),
            ),
            ParameterGroup("Data access", (self.allowed_s3_buckets, self.batch_output_bucket)),
            ParameterGroup("Monitoring", (self.alarms, self.alarm_topic_arn)),
        ]

    def all(self) -> list[CfnParameter]:
        return [parameter for group in self.groups for parameter in group.parameters]

    def _parameter(self, stack: Stack, name: str, label: str, description: str, **options) -> CfnParameter:
        # Parameters are created at stack scope so that their logical ids are exactly `name`.
        self._labels[name] = label
        return CfnParameter(stack, name, description=description, **options)

    def add_to_group(self, label: str, parameter: CfnParameter, parameter_label: str) -> None:
        """Let a later feature (e.g. the API Explorer) put its parameter into an existing console group."""
        self._labels[parameter.logical_id] = parameter_label
        for index, group in enumerate(self.groups):
            if group.label == label:
                self.groups[index] = ParameterGroup(label, (*group.parameters, parameter))
                return
        self.groups.append(ParameterGroup(label, (parameter,)))

    def interface_metadata(self) -> dict:
        """The AWS::CloudFormation::Interface value: console groups and labels."""
        return {
            "ParameterGroups": [
                {"Label": {"default": group.label}, "Parameters": [p.logical_id for p in group.parameters]}
                for group in self.groups
            ],
            "ParameterLabels": {name: {"default": label} for name, label in self._labels.items()},
        }


class Conditions(Construct):
    """Every condition of the root stack, in one place."""

    def __init__(self, scope: Construct, construct_id: str, *, parameters: Parameters) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)

        def condition(name: str, expression) -> CfnCondition:
            return CfnCondition(stack, name, expression=expression)

        self.image_similarity = condition(
            "ImageSimilarityEnabled", Fn.condition_equals(parameters.image_similarity.value_as_string, "yes")
        )
        uses_lambda = Fn.condition_equals(parameters.inference_backend.value_as_string, "Lambda")
        self.lambda_backend = condition("LambdaBackendEnabled", Fn.condition_and(self.image_similarity, uses_lambda))
        self.sagemaker_backend = condition(
            "SageMakerBackendEnabled", Fn.condition_and(self.image_similarity, Fn.condition_not(uses_lambda))
        )
        # The search stack embeds images itself, so it needs neither ImageSimilarity nor an inference backend.
        self.image_search = condition(
            "ImageSearchEnabled", Fn.condition_equals(parameters.image_search.value_as_string, "yes")
        )
        self.has_allowed_s3_buckets = condition(
            "HasAllowedS3Buckets",
            Fn.condition_not(Fn.condition_equals(parameters.allowed_s3_buckets.value_as_string, "")),
        )
        self.api_explorer = condition(
            "APIExplorerEnabled", Fn.condition_equals(parameters.api_explorer.value_as_string, "yes")
        )
        self.batch_embedding = condition(
            "BatchEmbeddingEnabled", Fn.condition_equals(parameters.batch_embedding.value_as_string, "yes")
        )
        # The REST API exists while any feature needs it.
        self.api = condition("ApiEnabled", Fn.condition_or(self.image_similarity, self.api_explorer, self.image_search))

        def given(parameter: CfnParameter) -> CfnCondition:
            return Fn.condition_not(Fn.condition_equals(parameter.value_as_string, ""))

        self.custom_domain = condition(
            "CustomDomainEnabled", Fn.condition_and(self.api, given(parameters.custom_domain_name))
        )
        self.web_acl = condition("WebACLEnabled", Fn.condition_and(self.api, given(parameters.web_acl_arn)))
        self.creates_cloudwatch_role = condition(
            "CloudWatchRoleCreated",
            Fn.condition_and(self.api, Fn.condition_equals(parameters.cloudwatch_role.value_as_string, "create")),
        )
        self.alarms = condition(
            "AlarmsEnabled", Fn.condition_and(self.api, Fn.condition_equals(parameters.alarms.value_as_string, "yes"))
        )
        self.lambda_alarms = condition("LambdaAlarmsEnabled", Fn.condition_and(self.alarms, self.lambda_backend))
        self.has_alarm_topic = condition("HasAlarmTopic", given(parameters.alarm_topic_arn))


def apply_condition(scope: Construct, condition: CfnCondition) -> None:
    """Give `condition` to every resource and output defined under `scope` in scope's own stack.

    Resources inside nested stacks are left alone: the nested stack resource itself carries the condition.
    """
    stack = Stack.of(scope)
    for construct in scope.node.find_all():
        if Stack.of(construct) is not stack:
            continue
        if isinstance(construct, CfnResource):
            construct.cfn_options.condition = condition
        elif isinstance(construct, CfnOutput):
            construct.condition = condition
