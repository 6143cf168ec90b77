"""Every ordered pair of combinations, as one stack update: no name collisions, and the stage is redeployed."""

from __future__ import annotations

import itertools
import json

import pytest
from cfn_matrix import (
    NAME_PROPERTY,
    ROOT,
    Deployment,
    Transition,
    choice_parameters,
    feature_parameters,
    parameter_samples,
)


@pytest.fixture(scope="module")
def transitions(deployments) -> list[Transition]:
    return [Transition(a, b) for a, b in itertools.permutations(deployments, 2)]


def _key_of(deployment: Deployment, kind: str) -> tuple[str, str] | None:
    keys = [key for key, (k, _) in deployment.resources.items() if k == kind and key[0] == ROOT]
    assert len(keys) <= 1
    return keys[0] if keys else None


def test_the_transitions_include_every_single_choice_change_and_the_risky_updates(synthesized, transitions):
    """What the checks below run over (issue 18: this test used to restate the fixture and could not fail)."""
    pairs = {(_frozen(t.before.parameters), _frozen(t.after.parameters)) for t in transitions}
    choices = choice_parameters(synthesized.root)
    changes = {name: 0 for name in choices}
    for before, after in pairs:
        changed = {k for k, v in dict(before).items() if dict(after)[k] != v}
        if len(changed) == 1 and (name := next(iter(changed))) in changes:
            changes[name] += 1
    # Each choice is switched, both ways, from every combination of the other choices.
    assert all(count >= 2 ** len(choices) for count in changes.values()), changes
    assert any(_is_rename_with_feature_off(t) for t in transitions)
    assert any(_is_uninstall(synthesized, t) for t in transitions)


def _frozen(parameters: dict) -> frozenset:
    return frozenset(parameters.items())


def _is_rename_with_feature_off(transition: Transition) -> bool:
    before, after = transition.before.parameters, transition.after.parameters
    renamed = before["APIGatewayStageName"] != after["APIGatewayStageName"]
    switched_off = any(before[f] == "yes" and after[f] == "no" for f in ("ImageSimilarity", "APIExplorer"))
    return renamed and switched_off and "yes" in (after["ImageSimilarity"], after["APIExplorer"])


def _is_uninstall(synthesized, transition: Transition) -> bool:
    return all(transition.after.parameters[f] == "no" for f in feature_parameters(synthesized.root))


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
        # Only the backends come and go (and the alarm on the function's throttles, with the function).
        assert kinds - {"AWS::CloudWatch::Alarm"} == {"AWS::CloudFormation::Stack"}
        assert not any(transition.after.resources[k][0] == "AWS::ApiGateway::Method" for k in transition.replaced)


def test_changing_the_stage_name_replaces_only_the_stage(transitions):
    renames = [
        t
        for t in transitions
        if _only_changed(t, "APIGatewayStageName") and t.after.parameters["ImageSimilarity"] == "yes"
    ]
    assert renames
    for transition in renames:
        # The stage, and its execution-log group, named after it.
        assert {transition.after.resources[k][0] for k in transition.replaced if k[0] == ROOT} == {
            "AWS::ApiGateway::Stage",
            "AWS::Logs::LogGroup",
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


# -- the clean-up phase (issue 14, defect 5) ---------------------------------------------------------------------------
def test_no_update_deploys_the_api_in_its_clean_up_phase(transitions):
    """CreateDeployment is throttled per account and a failure there leaves the stack in UPDATE/DELETE_FAILED."""
    late = {
        f"{t.before.parameters} -> {t.after.parameters}": t.cleanup_calls()
        for t in transitions
        if any(call.get("action") == "createDeployment" for call in t.cleanup_calls())
    }
    assert late == {}
    assert max(t.deployment_calls() for t in transitions) == 1


def test_after_every_update_the_stage_serves_only_what_exists(transitions):
    """Once the clean-up phase has deleted a backend, no route of the stage may still call it, and no stage other
    than the stack's own may have been deployed to."""
    problems = {}
    for transition in transitions:
        _, unmanaged = transition.served()
        missing = transition.served_targets_missing()
        if missing or unmanaged:
            problems[f"{transition.before.parameters} -> {transition.after.parameters}"] = (missing, unmanaged)
    assert problems == {}


def test_stage_rename_with_a_feature_switched_off_in_the_same_update(synthesized):
    """The update the review singled out: rename the stage and switch Image Similarity off, the explorer staying."""
    samples = parameter_samples(synthesized.root)
    defaults = {name: values[0] for name, values in samples.items()}
    before = Deployment.evaluate(synthesized.root, synthesized.nested, defaults)
    after = Deployment.evaluate(
        synthesized.root, synthesized.nested, {**defaults, "ImageSimilarity": "no", "APIGatewayStageName": "v2"}
    )
    transition = Transition(before, after)
    served, unmanaged = transition.served()
    assert unmanaged == set() and transition.served_targets_missing() == []
    # One deployment, in the update phase; the clean-up phase only deletes the one it replaced.
    assert transition.deployment_calls() == 1
    assert [call["action"] for call in transition.cleanup_calls()] == ["deleteDeployment"]
    (post,) = [props for (path, method), props in served.items() if (path, method) == ("/image-similarity", "POST")]
    assert post["Integration"]["Type"] == "MOCK"  # the new stage answers 404 "not deployed", not the old backend
    assert any(kind == "AWS::CloudFormation::Stack" for kind, _ in (before.resources[k] for k in transition.deleted))


def test_the_clean_up_model_catches_a_route_deleted_while_the_stage_is_renamed():
    """The model itself, on the design issue 14 replaced: a route deleted with its feature and a custom resource
    that redeploys the stage, by name, when it is deleted."""
    template, nested = _route_removal_template(), {"Backend": {"Resources": {}}}
    before = Deployment.evaluate(template, nested, {"Feature": "yes", "StageName": "prod"})
    after = Deployment.evaluate(template, nested, {"Feature": "no", "StageName": "v2"})
    transition = Transition(before, after)
    _, unmanaged = transition.served()
    assert unmanaged == {"prod"}  # the old stage is deployed to (or re-created) outside the stack
    assert transition.served_targets_missing() == ["POST /feature -> Backend"]
    assert transition.deployment_calls() == 2
    same_stage = Transition(before, Deployment.evaluate(template, nested, {"Feature": "no", "StageName": "prod"}))
    assert same_stage.served()[1] == set() and same_stage.served_targets_missing() == []


def _route_removal_template() -> dict:
    call = {
        "Fn::Join": [
            "",
            ['{"action":"createDeployment","parameters":{"restApiId":"', {"Ref": "Api"}, '","stageName":"',
             {"Ref": "StageName"}, '"}}'],
        ]
    }
    return {
        "Parameters": {"Feature": {"Type": "String"}, "StageName": {"Type": "String"}},
        "Conditions": {"On": {"Fn::Equals": [{"Ref": "Feature"}, "yes"]}},
        "Resources": {
            "Api": {"Type": "AWS::ApiGateway::RestApi"},
            "Backend": {"Type": "AWS::CloudFormation::Stack", "Condition": "On", "Properties": {}},
            "Path": {
                "Type": "AWS::ApiGateway::Resource",
                "Condition": "On",
                "DependsOn": ["Removal"],
                "Properties": {
                    "RestApiId": {"Ref": "Api"},
                    "ParentId": {"Fn::GetAtt": ["Api", "RootResourceId"]},
                    "PathPart": "feature",
                },
            },
            "Post": {
                "Type": "AWS::ApiGateway::Method",
                "Condition": "On",
                "Properties": {
                    "RestApiId": {"Ref": "Api"},
                    "ResourceId": {"Ref": "Path"},
                    "HttpMethod": "POST",
                    "Integration": {"Uri": {"Fn::GetAtt": ["Backend", "Outputs.Arn"]}},
                },
            },
            "Removal": {"Type": "Custom::ApiGatewayRouteRemoval", "Condition": "On", "Properties": {"Delete": call}},
            "Deployment": {
                "Type": "Custom::ApiGatewayDeployment",
                "Properties": {"Feature": {"Ref": "Feature"}, "Stage": {"Ref": "StageName"}},
            },
            "Stage": {
                "Type": "AWS::ApiGateway::Stage",
                "Properties": {
                    "RestApiId": {"Ref": "Api"},
                    "StageName": {"Ref": "StageName"},
                    "DeploymentId": {"Fn::GetAtt": ["Deployment", "id"]},
                },
            },
        },
    }


def test_no_resource_has_a_fixed_physical_name(synthesized):
    """Names are generated or derived from a resource of the stack (the API's id, the nested stack's id), so they
    never collide, whatever the update; the collision checks above are the safety net."""
    for template in [synthesized.root, *synthesized.nested.values()]:
        for logical_id, resource in template["Resources"].items():
            name = resource.get("Properties", {}).get(NAME_PROPERTY.get(resource["Type"]))
            if name is None:
                continue
            derived = json.dumps(name)
            assert '"Ref": "AWS::StackId"' in derived or _refers_to_a_resource(template, name), logical_id


def _refers_to_a_resource(template: dict, value) -> bool:
    if isinstance(value, dict):
        if value.get("Ref") in template["Resources"]:
            return True
        return any(_refers_to_a_resource(template, v) for v in value.values())
    if isinstance(value, list):
        return any(_refers_to_a_resource(template, v) for v in value)
    return False
