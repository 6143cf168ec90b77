"""CloudFormation parameters of the root stack, the conditions derived from them, and how conditions are applied.

Everything a user can change in the console lives here, so the matrix tests and the docs have one place to read.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnCondition, CfnOutput, CfnParameter, CfnResource, Fn, Stack
from constructs import Construct

# Bucket names as S3 allows them, comma-separated, no spaces; empty means "any bucket the role can read".
_BUCKET_LIST_PATTERN = r"^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](,[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])*$"

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
            "NONE: anyone with the URL may call the API (needed for 'Try it out' in the API Explorer). AWS_IAM: callers "
            "sign requests with SigV4 and need execute-api:Invoke.",
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
            "Memory of the inference function when InferenceBackend is Lambda; Lambda's CPU share grows with it.",
            type="Number",
            default="1769",
            min_value=1024,
            max_value=10240,
        )
        self.sagemaker_instance_type = self._parameter(
            stack,
            "SageMakerInstanceType",
            "SageMaker instance type",
            "Instance type of the real-time endpoint when InferenceBackend is SageMaker (CPU).",
            default="ml.c5.xlarge",
            allowed_values=list(SAGEMAKER_INSTANCE_TYPES),
        )
        self.allowed_s3_buckets = self._parameter(
            stack,
            "AllowedS3Buckets",
            "Allowed S3 buckets",
            "Comma-separated bucket names that s3:// image URLs may point to (no spaces). Empty: any bucket this "
            "account's inference role can read.",
            default="",
            allowed_pattern=_BUCKET_LIST_PATTERN,
            constraint_description="comma-separated S3 bucket names without spaces, or empty",
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
            ParameterGroup("Features", (self.image_similarity, self.api_explorer, self.batch_embedding)),
            ParameterGroup(
                "Inference", (self.inference_backend, self.lambda_memory_size, self.sagemaker_instance_type)
            ),
            ParameterGroup("API Gateway", (self.authorization, self.stage_name)),
            ParameterGroup("Data access", (self.allowed_s3_buckets, self.batch_output_bucket)),
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
        self.api = condition("ApiEnabled", Fn.condition_or(self.image_similarity, self.api_explorer))


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
