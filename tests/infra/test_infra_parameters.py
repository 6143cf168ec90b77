"""Root stack parameters, console interface, conditions, conditional nested stacks and outputs."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template

# In the SPEC's order, default first (issue 8: the API is public by default).
USER_PARAMETERS = {
    "ImageSimilarity": ["yes", "no"],
    "InferenceBackend": ["Lambda", "SageMaker"],
    "APIGatewayAuthorization": ["NONE", "AWS_IAM"],
}


@pytest.fixture(scope="module")
def template(root) -> Template:
    return Template.from_json(root)


@pytest.mark.parametrize(("name", "allowed"), USER_PARAMETERS.items())
def test_choice_parameters_allow_exactly_the_spec_values(root, name, allowed):
    spec = root["Parameters"][name]
    assert spec["Type"] == "String"
    assert spec["AllowedValues"] == allowed
    assert spec["Default"] == allowed[0]
    assert spec["Description"]


def test_free_form_parameters_are_constrained(root):
    params = root["Parameters"]
    assert params["APIGatewayStageName"]["Default"] == "prod"
    assert params["APIGatewayStageName"]["AllowedPattern"]
    assert params["LambdaMemorySize"]["Type"] == "Number"
    # New accounts may be refused more than 3,008 MB (issue 14, defect 7).
    assert params["LambdaMemorySize"]["MaxValue"] == 3008 and "3008" in params["LambdaMemorySize"]["Description"]
    assert params["SageMakerInstanceType"]["Default"].startswith("ml.c5.")
    assert all(t.startswith("ml.") for t in params["SageMakerInstanceType"]["AllowedValues"])
    assert params["AllowedS3Buckets"]["Default"] == ""
    # It becomes a SageMaker container environment value, at most 1,024 bytes (issue 14, defect 7).
    assert params["AllowedS3Buckets"]["MaxLength"] == 1024 and "1024" in params["AllowedS3Buckets"]["Description"]
    assert "Service Quotas" in params["SageMakerInstanceType"]["Description"]


@pytest.mark.parametrize("name", ["APIGatewayAuthorization", "CustomDomainName"])
def test_china_icp_rule_is_in_the_parameter_descriptions(root, name):
    """Issue 14, defect 8: unsigned calls get 403 in Beijing and Ningxia without an ICP licence."""
    assert "ICP" in root["Parameters"][name]["Description"]


@pytest.mark.parametrize(
    ("name", "off"),
    [("WebACLArn", ""), ("Alarms", "no"), ("AlarmTopicArn", ""), ("CustomDomainName", ""), ("CertificateArn", "")],
)
def test_operator_options_are_off_by_default(root, name, off):
    assert root["Parameters"][name]["Default"] == off


def test_a_custom_domain_needs_a_certificate(root):
    rule = root["Rules"]["CustomDomainNeedsCertificate"]
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CustomDomainName"}, ""]}]}
    (assertion,) = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CertificateArn"}, ""]}]}


@pytest.mark.parametrize(
    ("value", "valid"),
    [("", True), ("my-bucket", True), ("a.b-c,images-2026", True), ("a, b", False), ("Upper", False), (",", False)],
)
def test_allowed_buckets_pattern(root, value, valid):
    import re

    assert bool(re.fullmatch(root["Parameters"]["AllowedS3Buckets"]["AllowedPattern"], value)) is valid


def test_console_interface_groups_and_labels_every_user_parameter(root):
    interface = root["Metadata"]["AWS::CloudFormation::Interface"]
    grouped = [name for group in interface["ParameterGroups"] for name in group["Parameters"]]
    user_parameters = {name for name in root["Parameters"] if name != "BootstrapVersion"}
    assert sorted(grouped) == sorted(user_parameters)
    assert set(interface["ParameterLabels"]) == user_parameters
    assert all(label["default"] for label in interface["ParameterLabels"].values())


def test_conditions_derive_from_the_parameters(template):
    template.has_condition("ImageSimilarityEnabled", {"Fn::Equals": [{"Ref": "ImageSimilarity"}, "yes"]})
    template.has_condition(
        "LambdaBackendEnabled",
        {"Fn::And": [{"Condition": "ImageSimilarityEnabled"}, {"Fn::Equals": [{"Ref": "InferenceBackend"}, "Lambda"]}]},
    )
    template.has_condition(
        "SageMakerBackendEnabled",
        {
            "Fn::And": [
                {"Condition": "ImageSimilarityEnabled"},
                {"Fn::Not": [{"Fn::Equals": [{"Ref": "InferenceBackend"}, "Lambda"]}]},
            ]
        },
    )
    template.has_condition("HasAllowedS3Buckets", {"Fn::Not": [{"Fn::Equals": [{"Ref": "AllowedS3Buckets"}, ""]}]})


@pytest.mark.parametrize(
    ("prefix", "condition"),
    [("LambdaBackend", "LambdaBackendEnabled"), ("SageMakerBackend", "SageMakerBackendEnabled")],
)
def test_each_backend_is_a_nested_stack_carrying_its_condition(root, prefix, condition):
    stacks = {k: v for k, v in root["Resources"].items() if v["Type"] == "AWS::CloudFormation::Stack"}
    (resource,) = [v for k, v in stacks.items() if k.startswith(prefix)]
    assert resource["Condition"] == condition


def test_every_root_resource_but_the_anchor_is_conditional(root):
    unconditional = [k for k, v in root["Resources"].items() if "Condition" not in v]
    assert unconditional == ["Anchor"]
    assert root["Resources"]["Anchor"]["Type"] == "AWS::CloudFormation::WaitConditionHandle"


def test_image_similarity_output_is_the_partition_aware_invoke_url(template, root):
    template.has_output(
        "ImageSimilarity",
        {
            "Condition": "ImageSimilarityEnabled",
            "Description": Match.string_like_regexp("^Image Similarity"),
            "Value": {
                "Fn::Join": [
                    "",
                    Match.array_with(
                        [{"Ref": "AWS::URLSuffix"}, Match.object_like({"Ref": Match.any_value()}), "/image-similarity"]
                    ),
                ]
            },
        },
    )
    assert "amazonaws.com" not in str(root["Outputs"])


def test_stage_base_url_output(template):
    template.has_output("ApiStageUrl", {"Value": {"Fn::Join": ["", Match.array_with([{"Ref": "AWS::URLSuffix"}])]}})
