"""The API Explorer on AWS: its parameter, nested stack, public GET routes and output, in every combination; and its
zip, which holds only the explorer and runs on a bare Python (standard library only)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cfn_matrix import ROOT, Deployment, Transition, api_path, has_api
from infra_synthesis import Synthesized

from infra.explorer import CODE_FILES, HANDLER

EXPLORER_PATHS = {"/api-explorer", "/api-explorer/{proxy+}"}


@pytest.fixture(scope="module")
def explorer_template(synthesized) -> dict:
    return synthesized.nested_template("ApiExplorer")


def explorer_methods(deployment: Deployment) -> dict[str, dict]:
    root = {lid: value for (stack, lid), value in deployment.resources.items() if stack == ROOT}
    found = {}
    for kind, props in root.values():
        if kind == "AWS::ApiGateway::Method" and (path := api_path(root, props["ResourceId"])) in EXPLORER_PATHS:
            found[f"{props['HttpMethod']} {path}"] = props
    return found


def explorer_function(deployment: Deployment) -> dict | None:
    functions = [
        props
        for (stack, _), (kind, props) in deployment.resources.items()
        if stack.startswith("ApiExplorer") and kind == "AWS::Lambda::Function"
    ]
    assert len(functions) <= 1
    return functions[0] if functions else None


def test_parameter_is_a_feature_switch_with_its_condition(synthesized):
    root = synthesized.root
    assert root["Parameters"]["APIExplorer"]["AllowedValues"] == ["yes", "no"]
    groups = root["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    assert "APIExplorer" in next(g["Parameters"] for g in groups if g["Label"]["default"] == "Features")
    assert root["Conditions"]["APIExplorerEnabled"] == {"Fn::Equals": [{"Ref": "APIExplorer"}, "yes"]}


def test_every_combination_has_the_explorer_exactly_when_asked(deployments):
    for deployment in deployments:
        wanted = deployment.parameters["APIExplorer"] == "yes"
        api = has_api(deployment.parameters)
        methods = explorer_methods(deployment)
        function = explorer_function(deployment)
        assert (function is not None) == wanted, deployment.parameters
        # The routes live with the API; without the explorer they answer 404 (infra.api.not_deployed_integration).
        assert set(methods) == ({f"GET {p}" for p in EXPLORER_PATHS} if api else set()), deployment.parameters
        assert ("APIExplorer" in deployment.root.outputs) == wanted
        if not wanted:
            assert {m["Integration"]["Type"] for m in methods.values()} <= {"MOCK"}
            continue
        # Reachable by a browser under either authorization; the page itself says what the API needs.
        assert {m["AuthorizationType"] for m in methods.values()} == {"NONE"}
        assert {m["Integration"]["Type"] for m in methods.values()} == {"AWS_PROXY"}
        assert function["Environment"]["Variables"] == {
            "EXPLORER_AUTHORIZATION": deployment.parameters["APIGatewayAuthorization"],
            "EXPLORER_IMAGE_SIMILARITY": deployment.parameters["ImageSimilarity"],
            "EXPLORER_IMAGE_SEARCH": deployment.parameters["ImageSearch"],
        }


def test_explorer_alone_keeps_the_api_and_stage_and_a_404_for_the_other_features(deployments):
    alone = [
        d
        for d in deployments
        if d.parameters["APIExplorer"] == "yes"
        and d.parameters["ImageSimilarity"] == d.parameters["ImageSearch"] == "no"
    ]
    assert alone
    for deployment in alone:
        kinds = [kind for (stack, _), (kind, props) in deployment.resources.items() if stack == ROOT]
        assert kinds.count("AWS::ApiGateway::RestApi") == kinds.count("AWS::ApiGateway::Stage") == 1
        posts = [
            p
            for (s, _), (k, p) in deployment.resources.items()
            if k == "AWS::ApiGateway::Method" and p["HttpMethod"] == "POST"
        ]
        assert posts and {p["Integration"]["Type"] for p in posts} == {"MOCK"}  # 404: not deployed
        # Batch embedding is independent of the API: its output may be there too.
        others = {"CustomDomainTarget", "CustomDomainUrl", "BatchEmbeddingStateMachineArn"}
        assert set(deployment.root.outputs) - others == {"APIExplorer", "ApiStageUrl"}


def test_output_is_the_explorer_page_on_the_stage(synthesized):
    output = synthesized.root["Outputs"]["APIExplorer"]
    assert output["Condition"] == "APIExplorerEnabled"
    assert output["Value"]["Fn::Join"][1][-1] == "/api-explorer/"


def test_function_is_a_small_python_zip_that_api_gateway_may_invoke(explorer_template):
    (function,) = [
        r["Properties"] for r in explorer_template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
    ]
    assert function["Handler"] == HANDLER and function["Runtime"].startswith("python3.")
    assert "S3Key" in function["Code"] and "ImageUri" not in function["Code"]
    (permission,) = [
        r["Properties"] for r in explorer_template["Resources"].values() if r["Type"] == "AWS::Lambda::Permission"
    ]
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert "/GET/api-explorer*" in json.dumps(permission["SourceArn"])


def explorer_asset(synthesized: Synthesized, explorer_template: dict) -> Path:
    (function,) = [r for r in explorer_template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    return synthesized.outdir / function["Metadata"]["aws:asset:path"]


def test_zip_holds_only_the_explorer(synthesized, explorer_template):
    asset = explorer_asset(synthesized, explorer_template)
    files = {str(p.relative_to(asset)) for p in asset.rglob("*") if p.is_file()}
    assert files == {f for f in files if any(f == c or f.startswith(c + "/") for c in CODE_FILES)}
    assert "image_similarity/swagger_ui/swagger-ui-bundle.js" in files
    assert sum((asset / f).stat().st_size for f in files) < 3_000_000


def test_zip_handler_runs_on_a_bare_python(synthesized, explorer_template):
    """`python -I -S`: no site-packages, no environment, only the zip's files, as a fresh Lambda runtime has."""
    asset = explorer_asset(synthesized, explorer_template)
    event = {
        "path": "/api-explorer/openapi.json",
        "httpMethod": "GET",
        "headers": {},
        "requestContext": {
            "domainName": "abc.execute-api.eu-west-1.amazonaws.com",
            "stage": "prod",
            "path": "/prod/api-explorer/openapi.json",
        },
    }
    module, function = HANDLER.rsplit(".", 1)
    script = (
        f"import sys, json; sys.path.insert(0, {str(asset)!r}); from {module} import {function}; "
        f"print(json.dumps({function}(json.loads(sys.argv[1]))))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script, json.dumps(event)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    response = json.loads(done.stdout)
    assert response["statusCode"] == 200
    doc = json.loads(response["body"])
    assert doc["servers"][0]["url"] == "https://abc.execute-api.eu-west-1.amazonaws.com/prod"


def test_switching_the_explorer_touches_only_the_explorer_while_image_similarity_stays(deployments):
    by_parameters = {json.dumps(d.parameters, sort_keys=True): d for d in deployments}
    switches = []
    for before in deployments:
        if before.parameters["ImageSimilarity"] == "yes":
            flipped = {**before.parameters, "APIExplorer": "no" if before.parameters["APIExplorer"] == "yes" else "yes"}
            after = by_parameters.get(json.dumps(flipped, sort_keys=True))
            if after is not None:  # the matrix has both sides for every combination of the choices
                switches.append(Transition(before, after))
    assert switches
    for transition in switches:
        changed = {key for key in transition.created | transition.deleted | transition.replaced if key[0] == ROOT}
        kinds = {transition.after.resources.get(k, transition.before.resources.get(k))[0] for k in changed}
        assert kinds <= {"AWS::CloudFormation::Stack"}  # its routes stay, their integration changes
        assert all("apiexplorer" in lid.lower() for _, lid in changed), sorted(changed)
        assert not transition.collisions()
