"""The root stack: parameters, conditions, the REST API and one conditional nested stack per backend."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, CfnResource, Fn, Stack
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.api import RestApi
from infra.checks import REDUNDANT_ROLE_DEPENDENCY, acknowledge, ignore_cfn_lint
from infra.lambda_backend import LambdaBackend, LambdaBackendProps
from infra.parameters import Conditions, Parameters, apply_condition
from infra.sagemaker_backend import SageMakerBackend, SageMakerBackendProps
from infra.service import ServiceProps, s3_object_arns
from infra.stage import ApiStage

IMAGE_SIMILARITY_PATH = "image-similarity"


class ImageSimilarityStack(Stack):
    """Deploys the Image Similarity API; every choice is a CloudFormation parameter so it can change in the console."""

    def __init__(self, scope: Construct, construct_id: str, *, service_directory: Path, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.parameters = Parameters(self, "Parameters")
        self.conditions = Conditions(self, "Conditions", parameters=self.parameters)
        # CloudFormation refuses a stack whose every resource is switched off by a condition; this free, inert
        # resource keeps `ImageSimilarity=no` (uninstalled) a valid state.
        CfnResource(self, "Anchor", type="AWS::CloudFormation::WaitConditionHandle")

        self.api = RestApi(self, "RestApi")
        allowed_s3_buckets = self.parameters.allowed_s3_buckets.value_as_string
        service = ServiceProps(
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
                invoke_source_arn=self.api.execute_arn("POST", f"/{IMAGE_SIMILARITY_PATH}"),
            ),
        )
        sagemaker_backend = SageMakerBackend(
            self,
            "SageMakerBackend",
            props=SageMakerBackendProps(
                service=service, instance_type=self.parameters.sagemaker_instance_type.value_as_string
            ),
        )
        lambda_backend.nested_stack_resource.cfn_options.condition = self.conditions.lambda_backend
        sagemaker_backend.nested_stack_resource.cfn_options.condition = self.conditions.sagemaker_backend

        # One method whatever the backend: two methods on one path in two nested stacks would collide when a user
        # switches backend (CloudFormation creates the new one before it deletes the old one).
        route = self.api.add_method(
            IMAGE_SIMILARITY_PATH,
            "POST",
            integration=Fn.condition_if(
                self.conditions.lambda_backend.logical_id, lambda_backend.integration, sagemaker_backend.integration
            ),
            authorization_type=self.parameters.authorization.value_as_string,
            description="ImageSimilarity",
        )
        self.stage = ApiStage(
            self,
            "Stage",
            api=self.api,
            stage_name=self.parameters.stage_name.value_as_string,
            parameter_values={p.logical_id: p.value_as_string for p in self._all_parameters()},
        )

        image_similarity_url = CfnOutput(
            self,
            "ImageSimilarityUrl",
            description="Image Similarity API: POST JSON here (url or img; or url_1/img_1 with url_2/img_2)",
            value=self.stage.url_for_path(f"/{IMAGE_SIMILARITY_PATH}"),
        )
        # Outputs live apart from parameters in the template, so this output may share the parameter's name.
        image_similarity_url.override_logical_id("ImageSimilarity")
        CfnOutput(
            self,
            "ApiStageUrl",
            description="Base URL of the API Gateway stage serving every API of this stack",
            value=self.stage.url_for_path("/"),
        )

        apply_condition(self.api, self.conditions.api)
        apply_condition(self.stage, self.conditions.api)
        apply_condition(route, self.conditions.image_similarity)
        image_similarity_url.condition = self.conditions.image_similarity
        self.node.find_child("ApiStageUrl").condition = self.conditions.api
        self._condition_custom_resource_provider()
        self.template_options.metadata = {"AWS::CloudFormation::Interface": self.parameters.interface_metadata()}

    def _all_parameters(self):
        return [p for group in self.parameters.groups for p in group.parameters]

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
