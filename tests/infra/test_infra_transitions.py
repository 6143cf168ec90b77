"""Every ordered pair of combinations, as one stack update: no name collisions, and the stage is redeployed."""

from __future__ import annotations

import itertools
import json

import pytest
from cfn_matrix import NAME_PROPERTY, ROOT, Deployment, Transition, feature_parameters


@pytest.fixture(scope="module")
def transitions(deployments) -> list[Transition]:
    return [Transition(a, b) for a, b in itertools.permutations(deployments, 2)]


def _key_of(deployment: Deployment, kind: str) -> tuple[str, str] | None:
    keys = [key for key, (k, _) in deployment.resources.items() if k == kind and key[0] == ROOT]
    assert len(keys) <= 1
    return keys[0] if keys else None


def test_every_ordered_pair_is_checked(deployments, transitions):
    assert len(transitions) == len(deployments) * (len(deployments) - 1)


def test_no_update_creates_what_it_deletes(transitions):
    collisions = {
        f"{t.before.parameters} -> {t.after.parameters}": sorted(t.collisions()) for t in transitions if t.collisions()
    }
    assert collisions == {}


def test_the_stage_is_redeployed_on_every_change(synthesized, transitions):
    # Batch embedding needs no API: without the API's own features there is no stage to redeploy.
    features = [name for name in feature_parameters(synthesized.root) if name != "BatchEmbedding"]
    for transition in transitions:
        deployment = _key_of(transition.after, "Custom::ApiGatewayDeployment")
        if deployment is None:
            assert all(transition.after.parameters[name] == "no" for name in features)
            continue
        assert transition.updated(deployment), (transition.before.parameters, transition.after.parameters)
        stage = _key_of(transition.after, "AWS::ApiGateway::Stage")
        _, props = transition.after.resources[stage]
        assert props["DeploymentId"] == {"Fn::GetAtt": [deployment[1], "id"]}


def _only_changed(transition: Transition, name: str) -> bool:
    before, after = transition.before.parameters, transition.after.parameters
    return {key for key in before if before[key] != after[key]} == {name}


def test_switching_backend_updates_the_one_method_in_place(transitions):
    switches = [
        t
        for t in transitions
        if _only_changed(t, "InferenceBackend") and t.after.parameters["ImageSimilarity"] == "yes"
    ]
    assert switches
    for transition in switches:
        changed = {key for key in transition.created | transition.deleted if key[0] == ROOT}
        kinds = {transition.after.resources.get(k, transition.before.resources.get(k))[0] for k in changed}
        assert kinds == {"AWS::CloudFormation::Stack"}  # only the backends come and go
        assert not any(transition.after.resources[k][0] == "AWS::ApiGateway::Method" for k in transition.replaced)


def test_changing_the_stage_name_replaces_only_the_stage(transitions):
    renames = [
        t
        for t in transitions
        if _only_changed(t, "APIGatewayStageName") and t.after.parameters["ImageSimilarity"] == "yes"
    ]
    assert renames
    for transition in renames:
        assert {transition.after.resources[k][0] for k in transition.replaced if k[0] == ROOT} == {
            "AWS::ApiGateway::Stage"
        }


# -- the collision check itself ------------------------------------------------------------------------------------
def _two_methods_template() -> dict:
    """The design issue 4 warns against: one POST per backend, on the same path."""

    def method(condition: str) -> dict:
        return {
            "Type": "AWS::ApiGateway::Method",
            "Condition": condition,
            "Properties": {"RestApiId": {"Ref": "Api"}, "ResourceId": {"Ref": "Path"}, "HttpMethod": "POST"},
        }

    return {
        "Parameters": {"Backend": {"Type": "String", "Default": "Lambda"}},
        "Conditions": {
            "UseLambda": {"Fn::Equals": [{"Ref": "Backend"}, "Lambda"]},
            "UseSageMaker": {"Fn::Not": [{"Condition": "UseLambda"}]},
        },
        "Resources": {
            "Api": {"Type": "AWS::ApiGateway::RestApi"},
            "Path": {
                "Type": "AWS::ApiGateway::Resource",
                "Properties": {
                    "RestApiId": {"Ref": "Api"},
                    "ParentId": {"Fn::GetAtt": ["Api", "RootResourceId"]},
                    "PathPart": "image-similarity",
                },
            },
            "LambdaPost": method("UseLambda"),
            "SageMakerPost": method("UseSageMaker"),
        },
    }


def test_collision_check_catches_two_methods_on_one_path():
    template = _two_methods_template()
    before = Deployment.evaluate(template, {}, {"Backend": "Lambda"})
    after = Deployment.evaluate(template, {}, {"Backend": "SageMaker"})
    (collision,) = Transition(before, after).collisions()
    assert collision[0] == "api-method" and collision[2:] == ("/image-similarity", "POST")


def test_collision_check_catches_a_fixed_name_and_ignores_references():
    def function(condition: str) -> dict:
        return {"Type": "AWS::Lambda::Function", "Condition": condition, "Properties": {"FunctionName": "fixed"}}

    def permission(condition: str, target: str) -> dict:
        properties = {"FunctionName": {"Fn::GetAtt": [target, "Arn"]}, "Principal": "apigateway.amazonaws.com"}
        return {"Type": "AWS::Lambda::Permission", "Condition": condition, "Properties": properties}

    template = {
        "Parameters": {"Backend": {"Type": "String", "Default": "a"}},
        "Conditions": {"A": {"Fn::Equals": [{"Ref": "Backend"}, "a"]}, "B": {"Fn::Not": [{"Condition": "A"}]}},
        "Resources": {
            "FunctionA": function("A"),
            "FunctionB": function("B"),
            "PermissionA": permission("A", "FunctionA"),
            "PermissionB": permission("B", "FunctionB"),
        },
    }
    before = Deployment.evaluate(template, {}, {"Backend": "a"})
    after = Deployment.evaluate(template, {}, {"Backend": "b"})
    assert Transition(before, after).collisions() == {
        ("name", "AWS::Lambda::Function", "fixed"),
        ("name", "AWS::Logs::LogGroup", "/aws/lambda/fixed"),
    }


def test_a_removed_route_is_redeployed_away_while_the_stage_stays(transitions):
    """When a feature goes but the stage stays, its route-removal resource is deleted with it (after it)."""
    checked = 0
    for transition in transitions:
        stage = _key_of(transition.after, "AWS::ApiGateway::Stage")
        removed_paths = [
            key
            for key in transition.deleted
            if transition.before.resources[key][0] == "AWS::ApiGateway::Resource" and key[0] == ROOT
        ]
        if stage is None or not removed_paths:
            continue
        removals = {
            key for key in transition.deleted if transition.before.resources[key][0] == "Custom::ApiGatewayRouteRemoval"
        }
        assert removals, (transition.before.parameters, transition.after.parameters)
        checked += 1
    assert checked


def test_no_resource_has_a_fixed_physical_name(synthesized):
    """Generated names never collide, whatever the update; the collision checks above are the safety net."""
    for template in [synthesized.root, *synthesized.nested.values()]:
        for logical_id, resource in template["Resources"].items():
            name = resource.get("Properties", {}).get(NAME_PROPERTY.get(resource["Type"]))
            # A name derived from the stack's id is as unique as a generated one.
            assert name is None or '"Ref": "AWS::StackId"' in json.dumps(name), logical_id
