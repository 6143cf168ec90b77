"""The root stack: parameters, conditions, the REST API, and conditional nested stacks for the backends and the
API Explorer."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnCondition, CfnOutput, CfnResource, CfnRule, CfnRuleAssertion, Fn, Stack
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.alarms import Alarms
from infra.api import Backend, RestApi
from infra.batch import BatchEmbedding, BatchEmbeddingProps, s3_bucket_arns
from infra.checks import REDUNDANT_ROLE_DEPENDENCY, acknowledge, ignore_cfn_lint
from infra.explorer import ApiExplorer, ApiExplorerProps
from infra.lambda_backend import LambdaBackend, LambdaBackendProps
from infra.parameters import Conditions, Parameters, apply_condition
from infra.sagemaker_backend import SageMakerBackend, SageMakerBackendProps
from infra.search import COLLECTIONS_PATH, ImageSearch, ImageSearchProps, add_collection_routes
from infra.service import ServiceProps, s3_object_arns
from infra.stage import ApiStage

IMAGE_SIMILARITY_PATH = "image-similarity"
API_EXPLORER_PATH = "api-explorer"


class ImageSimilarityStack(Stack):
    """Deploys the Image Similarity API; every choice is a CloudFormation parameter so it can change in the console."""

    def __init__(self, scope: Construct, construct_id: str, *, service_directory: Path, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.parameters = Parameters(self, "Parameters")
        self.conditions = Conditions(self, "Conditions", parameters=self.parameters)
        # CloudFormation refuses a stack whose every resource is switched off by a condition; this free, inert
        # resource keeps the uninstalled state (every feature set to no) a valid one.
        CfnResource(self, "Anchor", type="AWS::CloudFormation::WaitConditionHandle")

        self.api = RestApi(self, "RestApi")
        self._add_image_similarity(service_directory)
        self._add_api_explorer(service_directory)
        self._add_image_search()
        self._add_batch_embedding()
        self.stage = ApiStage(
            self,
            "Stage",
            api=self.api,
            stage_name=self.parameters.stage_name.value_as_string,
            parameter_values={p.logical_id: p.value_as_string for p in self.parameters.all()},
            creates_cloudwatch_role=self.conditions.creates_cloudwatch_role,
        )
        self._output(
            "ApiStageUrl",
            "Base URL of the API Gateway stage serving every API of this stack",
            self.stage.url_for_path("/"),
            self.conditions.api,
        )
        self._output(
            "ImageSimilarity",
            "Image Similarity API: POST JSON here (url or img; or url_1/img_1 with url_2/img_2)",
            self.stage.url_for_path(f"/{IMAGE_SIMILARITY_PATH}"),
            self.conditions.image_similarity,
        )
        self._output(
            "APIExplorer",
            "API Explorer: open in a browser to read the API (and try it when APIGatewayAuthorization is NONE)",
            self.stage.url_for_path(f"/{API_EXPLORER_PATH}/"),
            self.conditions.api_explorer,
        )
        self._output(
            "ImageSearch",
            "Image Search: collections of embeddings under this URL (POST {name}/items, POST {name}/search)",
            self.stage.url_for_path(f"/{COLLECTIONS_PATH}/"),
            self.conditions.image_search,
        )
        self._output(
            "ImageSearchVectorBucket",
            "The S3 Vectors bucket holding the collections; kept when ImageSearch is set to no (docs/SEARCH_AWS.md)",
            self.image_search.bucket_name,
            self.conditions.image_search,
        )
        # Routes stay while the API does; a feature that is off answers 404 through its route (infra.api).
        apply_condition(self.api, self.conditions.api)
        apply_condition(self.stage, self.conditions.api)
        for construct in (self.api.cloudwatch_role, self.api.cloudwatch_account):
            apply_condition(construct, self.conditions.creates_cloudwatch_role)
        self._add_operator_options()
        self._condition_custom_resource_provider()
        self.template_options.metadata = {"AWS::CloudFormation::Interface": self.parameters.interface_metadata()}

    def _add_image_similarity(self, service_directory: Path) -> None:
        """Both backends as conditional nested stacks, and the one POST method whose integration picks between them.

        One method whatever the backend: two methods on one path in two nested stacks would collide when a user
        switches backend (CloudFormation creates the new one before it deletes the old one).
        """
        allowed_s3_buckets = self.parameters.allowed_s3_buckets.value_as_string
        self.service = service = ServiceProps(
            directory=service_directory,
            allowed_s3_buckets=allowed_s3_buckets,
            s3_object_arns=s3_object_arns(allowed_s3_buckets, self.conditions.has_allowed_s3_buckets),
        )
        lambda_backend = LambdaBackend(
            self,
            "LambdaBackend",
            props=LambdaBackendProps(
                service=service,
                memory_size=self.parameters.lambda_memory_size.value_as_number,
                reserved_concurrency=self.parameters.lambda_reserved_concurrency.value_as_string,
                invoke_source_arn=self.api.execute_arn("POST", f"/{IMAGE_SIMILARITY_PATH}"),
            ),
        )
        sagemaker_backend = SageMakerBackend(
            self,
            "SageMakerBackend",
            props=SageMakerBackendProps(
                service=service,
                instance_type=self.parameters.sagemaker_instance_type.value_as_string,
                min_instances=self.parameters.sagemaker_min_instances.value_as_string,
                max_instances=self.parameters.sagemaker_max_instances.value_as_string,
            ),
        )
        lambda_backend.nested_stack_resource.cfn_options.condition = self.conditions.lambda_backend
        self.lambda_backend = lambda_backend
        sagemaker_backend.nested_stack_resource.cfn_options.condition = self.conditions.sagemaker_backend

        self.image_similarity_route = self.api.add_method(
            IMAGE_SIMILARITY_PATH,
            "POST",
            backends=[
                Backend(self.conditions.lambda_backend.logical_id, lambda_backend.integration),
                Backend(self.conditions.sagemaker_backend.logical_id, sagemaker_backend.integration),
            ],
            not_deployed="Image Similarity is not deployed on this stack: set its ImageSimilarity parameter to yes.",
            authorization_type=self.parameters.authorization.value_as_string,
            description="ImageSimilarity",
        )
        acknowledge(
            self.image_similarity_route.method,
            "The authorization type is the APIGatewayAuthorization parameter, which cdk-nag cannot evaluate: NONE "
            "(the product's default, for public use and the API Explorer's 'Try it out') or AWS_IAM; there is no "
            "Cognito user pool.",
            "AwsSolutions-APIG4",
            "AwsSolutions-COG4",
        )

    def _add_image_search(self) -> None:
        """The search nested stack (vector bucket and function) and the /collections routes it serves."""
        self.image_search = ImageSearch(
            self,
            "ImageSearchStack",  # "ImageSearch" is the parameter's id
            props=ImageSearchProps(
                service=self.service,
                memory_size=self.parameters.lambda_memory_size.value_as_number,
                invoke_source_arn=self.api.execute_arn("*", f"/{COLLECTIONS_PATH}/*"),
            ),
        )
        self.image_search.nested_stack_resource.cfn_options.condition = self.conditions.image_search
        self.image_search_route = add_collection_routes(
            self.api,
            backend=Backend(self.conditions.image_search.logical_id, self.image_search.integration),
            authorization_type=self.parameters.authorization.value_as_string,
        )

    def _add_api_explorer(self, service_directory: Path) -> None:
        """The explorer's nested stack and its two GET methods, which never require IAM: a browser must open them."""
        explorer = ApiExplorer(
            self,
            "ApiExplorer",  # "APIExplorer" is the parameter's id
            props=ApiExplorerProps(
                service_directory=service_directory,
                authorization=self.parameters.authorization.value_as_string,
                image_similarity=self.parameters.image_similarity.value_as_string,
                image_search=self.parameters.image_search.value_as_string,
                invoke_source_arn=self.api.execute_arn("GET", f"/{API_EXPLORER_PATH}*"),
            ),
        )
        explorer.nested_stack_resource.cfn_options.condition = self.conditions.api_explorer
        for path in (API_EXPLORER_PATH, f"{API_EXPLORER_PATH}/{{proxy+}}"):
            route = self.api.add_method(
                path,
                "GET",
                backends=[Backend(self.conditions.api_explorer.logical_id, explorer.integration)],
                not_deployed="The API Explorer is not deployed on this stack: set its APIExplorer parameter to yes.",
                authorization_type="NONE",
                description="APIExplorer",
                cors=False,  # the page calls the API from the API's own origin
            )
            acknowledge(
                route.method,
                "The API Explorer serves a public documentation page (no data); browsers cannot sign requests, and "
                "the API's own method keeps the APIGatewayAuthorization choice.",
                "AwsSolutions-APIG4",
                "AwsSolutions-COG4",
            )

    def _add_operator_options(self) -> None:
        """What operators may switch on, each off by default: WAF, a custom domain, alarms."""
        parameters, conditions = self.parameters, self.conditions
        self.stage.associate_web_acl(parameters.web_acl_arn.value_as_string, conditions.web_acl)
        domain = parameters.custom_domain_name.value_as_string
        target = self.stage.add_custom_domain(
            domain, parameters.certificate_arn.value_as_string, conditions.custom_domain
        )
        CfnRule(
            self,
            "CustomDomainNeedsCertificate",
            rule_condition=Fn.condition_not(Fn.condition_equals(domain, "")),
            assertions=[
                CfnRuleAssertion(
                    assert_=Fn.condition_not(Fn.condition_equals(parameters.certificate_arn.value_as_string, "")),
                    assert_description="CustomDomainName needs CertificateArn: a certificate for that domain.",
                )
            ],
        )
        self._output(
            "CustomDomainTarget",
            "DNS name to point a CNAME (or alias) record for CustomDomainName at",
            target,
            conditions.custom_domain,
        )
        self._output(
            "CustomDomainUrl",
            "Image Similarity API on the custom domain",
            Fn.join("", ["https://", domain, f"/{IMAGE_SIMILARITY_PATH}"]),
            conditions.custom_domain,
        )
        alarms = Alarms(
            self,
            "Monitoring",  # "Alarms" is the parameter's id
            api_name=self.api.api.rest_api_name,
            stage_name=self.stage.stage.ref,
            condition=conditions.alarms,
            topic_arn=parameters.alarm_topic_arn.value_as_string,
            has_topic=conditions.has_alarm_topic,
        )
        alarms.add_function_throttles(self.lambda_backend.function.function_name, conditions.lambda_alarms)

    def _add_batch_embedding(self) -> None:
        """The batch state machine's nested stack; it reads what the API may read and writes one named bucket."""
        output_bucket = self.parameters.batch_output_bucket.value_as_string
        batch = BatchEmbedding(
            self,
            "BatchEmbeddingStack",  # "BatchEmbedding" is the parameter's id
            props=BatchEmbeddingProps(
                service=self.service,
                s3_bucket_arns=s3_bucket_arns(
                    self.service.allowed_s3_buckets, self.conditions.has_allowed_s3_buckets.logical_id
                ),
                output_bucket=output_bucket,
            ),
        )
        batch.nested_stack_resource.cfn_options.condition = self.conditions.batch_embedding
        CfnRule(
            self,
            "BatchEmbeddingNeedsOutputBucket",
            rule_condition=Fn.condition_equals(self.parameters.batch_embedding.value_as_string, "yes"),
            assertions=[
                CfnRuleAssertion(
                    assert_=Fn.condition_not(Fn.condition_equals(output_bucket, "")),
                    assert_description="BatchEmbedding=yes needs BatchOutputBucket: the bucket runs write to",
                )
            ],
        )
        self._output(
            "BatchEmbeddingStateMachineArn",
            "Batch embedding: the state machine `image-similarity batch start` runs (docs/BATCH.md)",
            batch.state_machine_arn,
            self.conditions.batch_embedding,
        )

    def _output(self, logical_id: str, description: str, value: str, condition: CfnCondition) -> None:
        output = CfnOutput(self, f"{logical_id}Output", description=description, value=value)
        output.condition = condition
        # Outputs live apart from parameters in the template, so an output may share a parameter's name.
        output.override_logical_id(logical_id)

    def _condition_custom_resource_provider(self) -> None:
        """The AwsCustomResource provider is a singleton function at stack level; it goes with the API."""
        provider_id = "AWS" + cr.AwsCustomResource.PROVIDER_FUNCTION_UUID.replace("-", "")
        provider = self.node.find_child(provider_id)
        apply_condition(provider, self.conditions.api)
        ignore_cfn_lint(provider.node.default_child, REDUNDANT_ROLE_DEPENDENCY, "W3005")
        acknowledge(
            provider,
            "AWSLambdaBasicExecutionRole only lets CDK's custom-resource provider write its own logs.",
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        )
