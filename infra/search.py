"""Image Search nested stack: an Amazon S3 Vectors vector bucket and the function that serves /collections/*.

The search function runs the service image (the same one as the Lambda backend, built once) and embeds `img` / `url`
inputs itself, whatever InferenceBackend is. Calling the SageMaker endpoint instead would tie the search routes to the
backend choice (switching backend would rewire them), give the pair-mode endpoint a second caller to size for, and
add a network hop for what is one small model run; a `vector` input needs no model at all. The pair-mode function
gets no vector permission: only this function's role may touch the bucket.

The bucket is kept when ImageSearch is set to no or the stack is deleted (DeletionPolicy Retain): its indexes are
created at run time, so CloudFormation cannot empty it, and a console toggle should never destroy a catalogue.
docs/SEARCH_AWS.md says how to delete it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Fn, NestedStack, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3vectors as s3vectors
from constructs import Construct

from infra.api import Backend, RestApi, Route, invoked_by_api, lambda_proxy_integration
from infra.checks import REDUNDANT_ROLE_DEPENDENCY, acknowledge, ignore_cfn_lint
from infra.function_logs import function_role_and_logs
from infra.lambda_backend import FUNCTION_TIMEOUT
from infra.service import S3ReadAccess, ServiceProps, service_image

# Read by image_similarity.search.stores, which keeps both texts too (the infra does not import the service; a test
# compares them).
VECTOR_BUCKET_ENV = "IMAGE_SEARCH_VECTOR_BUCKET"
# The one tag the store writes, on CreateIndex: the collection's model version (s3vectors_store.MODEL_VERSION_TAG).
MODEL_VERSION_TAG = "image-similarity:model-version"
# What the store calls on a collection's index (one index per collection, created on first use).
INDEX_ACTIONS = (
    "s3vectors:CreateIndex",
    "s3vectors:GetIndex",
    "s3vectors:DeleteIndex",
    "s3vectors:PutVectors",
    "s3vectors:GetVectors",
    "s3vectors:QueryVectors",
    "s3vectors:ListVectors",
    "s3vectors:DeleteVectors",
    "s3vectors:ListTagsForResource",
)

COLLECTIONS_PATH = "collections"
NOT_DEPLOYED = "Image Search is not deployed on this stack: set its ImageSearch parameter to yes."
# Path under the API root -> (HTTP method, operation name) of each /collections route (the OpenAPI document's).
COLLECTION_ROUTES = {
    f"{COLLECTIONS_PATH}/{{name}}": (("GET", "DescribeCollection"), ("DELETE", "DeleteCollection")),
    f"{COLLECTIONS_PATH}/{{name}}/items": (("POST", "AddItems"),),
    f"{COLLECTIONS_PATH}/{{name}}/items/{{id}}": (("DELETE", "DeleteItem"),),
    f"{COLLECTIONS_PATH}/{{name}}/search": (("POST", "SearchCollection"),),
}


def add_collection_routes(api: RestApi, *, backend: Backend, authorization_type: str) -> Route:
    """Every /collections method served by `backend` with `authorization_type`, and one CORS preflight per path.

    Like every route, they live as long as the API: with ImageSearch=no each answers 404 "not deployed".
    """
    routes = []
    for path, methods in COLLECTION_ROUTES.items():
        for http_method, operation in methods:
            # One preflight per path listing all its methods: RestApi.add_method's own would be one per method.
            routes.append(
                api.add_method(
                    path,
                    http_method,
                    backends=[backend],
                    not_deployed=NOT_DEPLOYED,
                    authorization_type=authorization_type,
                    description=operation,
                    cors=False,
                )
            )
        cors = {"allow_origins": apigw.Cors.ALL_ORIGINS, "allow_methods": [m for m, _ in methods] + ["OPTIONS"]}
        routes[-1].resource.add_cors_preflight(**cors, allow_headers=[*apigw.Cors.DEFAULT_HEADERS])
        api.method_definitions.append({"path": path, "cors": cors})  # in the stage's redeployment fingerprint
    for route in routes:
        acknowledge(
            route.method,
            "The authorization type is the APIGatewayAuthorization parameter, which cdk-nag cannot evaluate: NONE "
            "(the product's default) or AWS_IAM, the same choice as POST /image-similarity; there is no Cognito "
            "user pool.",
            "AwsSolutions-APIG4",
            "AwsSolutions-COG4",
        )
    return Route(api.api.root.get_resource(COLLECTIONS_PATH), routes[0].method)


@dataclass(frozen=True)
class ImageSearchProps:
    service: ServiceProps
    memory_size: int | float
    """MB; the LambdaMemorySize parameter: the search function runs the same model as the Lambda backend."""
    invoke_source_arn: str
    """execute-api ARN pattern of the /collections methods."""


class ImageSearch(NestedStack):
    """The vector bucket, and the search function with its role and log group."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ImageSearchProps) -> None:
        super().__init__(
            scope,
            construct_id,
            description="Image Similarity: Image Search (Amazon S3 Vectors)",
            parameters={S3ReadAccess.PARAMETER: props.service.s3_object_arns},
        )
        self.bucket = s3vectors.CfnVectorBucket(self, "VectorBucket")
        self.bucket.apply_removal_policy(RemovalPolicy.RETAIN)
        # Ref is the bucket's ARN, arn:<partition>:s3vectors:<region>:<account>:bucket/<name>.
        self.bucket_name = Fn.select(1, Fn.split(":bucket/", self.bucket.ref))

        role, log_group = function_role_and_logs(
            self, "Image Search function: write its logs, read images from S3, use this stack's vector bucket"
        )
        S3ReadAccess(self, "S3ReadAccess", role=role)
        for statement in self._vector_statements():
            role.add_to_policy(statement)
        acknowledge(
            role,
            "Collections are vector indexes created at run time (one per collection name), so index actions name "
            "this bucket's indexes with a wildcard; nothing outside this one vector bucket is reachable.",
            f"AwsSolutions-IAM5[Resource::<{self.get_logical_id(self.bucket)}>/index/*]",
        )

        image = service_image(self, props.service)
        self.function = lambda_.DockerImageFunction(
            self,
            "SearchFunction",  # unlike the Lambda backend's "Function", so logical ids never coincide across stacks
            description="Image Search (/collections/*): add, search and delete embeddings in S3 Vectors",
            code=lambda_.DockerImageCode.from_ecr(image.repository, tag_or_digest=image.image_tag),
            architecture=lambda_.Architecture.X86_64,
            memory_size=props.memory_size,
            timeout=FUNCTION_TIMEOUT,
            role=role,
            log_group=log_group,
            environment={**props.service.environment(), VECTOR_BUCKET_ENV: self.bucket_name},
        )
        ignore_cfn_lint(self.function.node.default_child, REDUNDANT_ROLE_DEPENDENCY, "W3005")
        invoked_by_api(self.function, props.invoke_source_arn)

    def _vector_statements(self) -> list[iam.PolicyStatement]:
        indexes = f"{self.bucket.ref}/index/*"
        return [
            iam.PolicyStatement(actions=["s3vectors:GetVectorBucket"], resources=[self.bucket.ref]),
            iam.PolicyStatement(actions=list(INDEX_ACTIONS), resources=[indexes]),
            # CreateIndex with tags also needs TagResource; only the model-version tag may be written.
            iam.PolicyStatement(
                actions=["s3vectors:TagResource"],
                resources=[indexes],
                conditions={"ForAllValues:StringEquals": {"aws:TagKeys": [MODEL_VERSION_TAG]}},
            ),
        ]

    @property
    def integration(self) -> dict:
        """The /collections methods' integration (CloudFormation Integration property)."""
        return lambda_proxy_integration(self.function, timeout_ms=29_000)
