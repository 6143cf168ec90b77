"""Every combination of parameter values: what exists, and nothing refers to something that does not."""

from __future__ import annotations

import itertools

import pytest
from cfn_matrix import (
    PSEUDO_PARAMETERS,
    ROOT,
    Deployment,
    api_path,
    choice_parameters,
    feature_parameters,
    has_api,
    parameter_samples,
)
from infra_synthesis import Synthesized

FEATURE_ON = {"ImageSimilarity": "yes"}


BACKENDS = {"LambdaBackend", "SageMakerBackend"}


def nested_stack_names(deployment: Deployment) -> set[str]:
    return {logical_id.split("NestedStack")[0] for logical_id in deployment.nested}


def methods(deployment: Deployment, path_prefix: str) -> list[tuple[str, str]]:
    root_resources = {lid: value for (stack, lid), value in deployment.resources.items() if stack == ROOT}
    found = (
        (api_path(root_resources, props["ResourceId"]), props["HttpMethod"])
        for kind, props in root_resources.values()
        if kind == "AWS::ApiGateway::Method"
    )
    return sorted(m for m in found if m[0].startswith(path_prefix))


def uninstalled(synthesized: Synthesized, deployment: Deployment) -> bool:
    return all(deployment.parameters[name] == "no" for name in feature_parameters(synthesized.root))


def test_matrix_covers_every_user_parameter(synthesized, deployments):
    samples = parameter_samples(synthesized.root)
    assert set(samples) == set(synthesized.root["Parameters"]) - {"BootstrapVersion"}
    for name, values in samples.items():
        assert {d.parameters[name] for d in deployments} == set(values), name


def test_matrix_has_every_combination_of_the_choices_with_default_and_changed_settings(synthesized, deployments):
    choices = choice_parameters(synthesized.root)
    samples = parameter_samples(synthesized.root)
    defaults = {name: values[0] for name, values in samples.items()}
    for values in itertools.product(*(samples[name] for name in choices)):
        chosen = dict(zip(choices, values, strict=True))
        matching = [d.parameters for d in deployments if all(d.parameters[k] == v for k, v in chosen.items())]
        assert {**defaults, **chosen} in matching
        assert any(all(p[k] != defaults[k] for k in samples if k not in choices) for p in matching), chosen


def test_value_settings_never_change_which_resources_exist(synthesized, deployments):
    """Names and sizes are values; the optional operator settings, by contrast, each add resources."""
    samples = parameter_samples(synthesized.root)
    defaults = {name: values[0] for name, values in samples.items()}
    baseline = next(d for d in deployments if d.parameters == defaults).resource_types()
    for deployment in deployments:
        changed = {k for k, v in deployment.parameters.items() if v != defaults[k]}
        if not changed:
            continue
        same = deployment.resource_types() == baseline
        if changed <= VALUE_SETTINGS:
            assert same, changed
        elif changed & OPTIONAL_RESOURCES_SETTINGS == changed:
            assert not same, changed


VALUE_SETTINGS = {"APIGatewayStageName", "LambdaMemorySize", "SageMakerInstanceType", "LambdaReservedConcurrency"}
OPTIONAL_RESOURCES_SETTINGS = {
    "CustomDomainName",
    "CertificateArn",
    "WebACLArn",
    "Alarms",
    "AlarmTopicArn",
    "AllowedS3Buckets",
    "APIGatewayCloudWatchRole",
}


def test_no_combination_refers_to_anything_missing(deployments):
    problems = {str(d.parameters): d.dangling_references() for d in deployments}
    assert {k: v for k, v in problems.items() if v} == {}


def test_exactly_one_post_method_while_the_api_exists(synthesized, deployments):
    for deployment in deployments:
        expected = [("/image-similarity", "OPTIONS"), ("/image-similarity", "POST")]
        assert methods(deployment, "/image-similarity") == (expected if has_api(deployment.parameters) else [])


def test_the_chosen_backend_and_only_it_is_deployed(deployments):
    for deployment in deployments:
        backends = nested_stack_names(deployment) & BACKENDS
        if deployment.parameters["ImageSimilarity"] == "no":
            assert backends == set()
        else:
            assert backends == {f"{deployment.parameters['InferenceBackend']}Backend"}


def test_post_integration_follows_the_backend_and_authorization(deployments):
    for deployment in deployments:
        if not has_api(deployment.parameters):
            continue
        (post,) = [
            props
            for (stack, _), (kind, props) in deployment.resources.items()
            if kind == "AWS::ApiGateway::Method" and props.get("OperationName") == "ImageSimilarity"
        ]
        assert post["AuthorizationType"] == deployment.parameters["APIGatewayAuthorization"]
        expected = "AWS_PROXY" if deployment.parameters["InferenceBackend"] == "Lambda" else "AWS"
        if deployment.parameters["ImageSimilarity"] == "no":
            expected = "MOCK"
        assert post["Integration"]["Type"] == expected


def test_uninstalled_stack_keeps_only_the_anchor_and_cdk_metadata(synthesized, deployments):
    for deployment in deployments:
        if uninstalled(synthesized, deployment):
            assert deployment.resource_types() == [
                "root/AWS::CDK::Metadata",
                "root/AWS::CloudFormation::WaitConditionHandle",
            ]
            assert deployment.root.outputs == {}


def test_uninstalled_stack_is_not_empty_where_cdk_metadata_is_unavailable(synthesized):
    # CloudFormation rejects a stack with no resources; CDKMetadata only exists in the regions CDK lists.
    pseudo = {**PSEUDO_PARAMETERS, "AWS::Region": "xx-future-1"}
    features_off = dict.fromkeys(feature_parameters(synthesized.root), "no")
    deployment = Deployment.evaluate(synthesized.root, synthesized.nested, features_off, pseudo)
    assert deployment.resource_types() == ["root/AWS::CloudFormation::WaitConditionHandle"]


def test_outputs_exist_exactly_with_their_features(synthesized, deployments):
    for deployment in deployments:
        outputs = set(deployment.root.outputs)
        assert ("ImageSimilarity" in outputs) == (deployment.parameters["ImageSimilarity"] == "yes")
        # Batch embedding needs no API: the stage exists with the API's own features.
        api_features = [name for name in feature_parameters(synthesized.root) if name != "BatchEmbedding"]
        api_on = any(deployment.parameters[name] == "yes" for name in api_features)
        assert ("ApiStageUrl" in outputs) == api_on


def test_output_urls_resolve_for_the_stage_and_partition(synthesized):
    china = {**PSEUDO_PARAMETERS, "AWS::Region": "cn-north-1", "AWS::URLSuffix": "amazonaws.com.cn"}
    parameters = {**FEATURE_ON, "APIGatewayStageName": "beta"}
    deployment = Deployment.evaluate(synthesized.root, synthesized.nested, parameters, china)
    url = deployment.root.resolve(synthesized.root["Outputs"]["ImageSimilarity"]["Value"])
    # The API id and the stage are resources; the rest is known: China's region and domain, the path.
    parts = url["Fn::Join"][1]
    known = "".join(p for p in parts if isinstance(p, str))
    assert known == "https://.execute-api.cn-north-1.amazonaws.com.cn//image-similarity"


# -- the evaluator itself --------------------------------------------------------------------------------------------
TOY = {
    "Parameters": {"On": {"Type": "String", "Default": "yes"}, "Kind": {"Type": "String", "Default": "a"}},
    "Conditions": {
        "IsOn": {"Fn::Equals": [{"Ref": "On"}, "yes"]},
        "IsA": {"Fn::And": [{"Condition": "IsOn"}, {"Fn::Equals": [{"Ref": "Kind"}, "a"]}]},
        "IsB": {"Fn::And": [{"Condition": "IsOn"}, {"Fn::Not": [{"Condition": "IsA"}]}]},
        "Either": {"Fn::Or": [{"Condition": "IsA"}, {"Condition": "IsB"}]},
    },
    "Resources": {
        "A": {"Type": "AWS::SNS::Topic", "Condition": "IsA"},
        "B": {"Type": "AWS::SNS::Topic", "Condition": "IsB"},
        "Good": {
            "Type": "AWS::SNS::Topic",
            "Condition": "Either",
            "Properties": {"DisplayName": {"Fn::If": ["IsA", {"Ref": "A"}, {"Fn::GetAtt": ["B", "TopicName"]}]}},
        },
        "Bad": {"Type": "AWS::SNS::Topic", "Condition": "IsOn", "Properties": {"DisplayName": {"Ref": "A"}}},
        "BadDependency": {"Type": "AWS::SNS::Topic", "DependsOn": "B"},
    },
}


@pytest.mark.parametrize(
    ("parameters", "existing", "dangling"),
    [
        ({"On": "yes", "Kind": "a"}, {"A", "Good", "Bad", "BadDependency"}, ["BadDependency DependsOn B"]),
        ({"On": "yes", "Kind": "b"}, {"B", "Good", "Bad", "BadDependency"}, ["Resources/Bad -> A"]),
        ({"On": "no", "Kind": "a"}, {"BadDependency"}, ["BadDependency DependsOn B"]),
    ],
)
def test_evaluator_decides_conditions_and_finds_dangling_references(parameters, existing, dangling):
    deployment = Deployment.evaluate(TOY, {}, parameters)
    assert set(deployment.root.resources) == existing
    problems = deployment.dangling_references()
    assert len(problems) == len(dangling)
    assert all(any(d in p for p in problems) for d in dangling)


def test_resource_table_is_written_for_the_release_note(synthesized, deployments):
    """tests/artifacts/infra-resources.md: what each combination deploys; one row per combination of choices."""
    from cfn_matrix import resource_table
    from infra_synthesis import REPOSITORY

    table = resource_table(synthesized.root, deployments)
    rows = table.splitlines()[2:]
    assert len(rows) == len({row.rsplit("|", 2)[0] for row in rows}), "one set of parameters, two sets of resources"
    artifacts = REPOSITORY / "tests" / "artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "infra-resources.md").write_text(table)
