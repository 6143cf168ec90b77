"""Image Search on AWS: its parameter, the nested stack (S3 Vectors bucket, search function, IAM scoped to the bucket),
the /collections routes with the API's authorization in every combination, and the regions S3 Vectors exists in."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cfn_matrix import ROOT, Deployment, Evaluator, Transition, api_path, has_api
from cfnlint.api import ManualArgs, lint_file
from image_similarity.search import s3vectors_store, stores
from infra_synthesis import Synthesized
from search_aws.moto_s3vectors import BUCKET, moto_s3vectors_client

from infra import search

SEARCH_METHODS = {
    ("/collections/{name}", "GET"),
    ("/collections/{name}", "DELETE"),
    ("/collections/{name}", "OPTIONS"),
    ("/collections/{name}/items", "POST"),
    ("/collections/{name}/items", "OPTIONS"),
    ("/collections/{name}/items/{id}", "DELETE"),
    ("/collections/{name}/items/{id}", "OPTIONS"),
    ("/collections/{name}/search", "POST"),
    ("/collections/{name}/search", "OPTIONS"),
}
SAMPLE_BUCKET_ARN = "arn:aws-cn:s3vectors:cn-north-1:111122223333:bucket/imagesimilarity-vectorbucket-abc123"


@pytest.fixture(scope="module")
def search_template(synthesized: Synthesized) -> dict:
    return synthesized.nested_template("ImageSearchStack")


def resources_of(template: dict, kind: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def only(template: dict, kind: str) -> tuple[str, dict]:
    (item,) = resources_of(template, kind).items()
    return item


def search_methods(deployment: Deployment) -> dict[tuple[str, str], dict]:
    root = {lid: value for (stack, lid), value in deployment.resources.items() if stack == ROOT}
    found = {}
    for kind, props in root.values():
        if kind == "AWS::ApiGateway::Method" and (path := api_path(root, props["ResourceId"])).startswith(
            "/collections"
        ):
            found[(path, props["HttpMethod"])] = props
    return found


def vector_statements(template: dict) -> list[dict]:
    statements = [
        statement
        for policy in resources_of(template, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    return [s for s in statements if "s3vectors:" in json.dumps(s["Action"])]


# -- parameter and condition ------------------------------------------------------------------------------------------
def test_parameter_is_a_feature_switch_off_by_default(synthesized):
    root = synthesized.root
    assert root["Parameters"]["ImageSearch"]["AllowedValues"] == ["yes", "no"]
    assert root["Parameters"]["ImageSearch"]["Default"] == "no"
    groups = root["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    assert "ImageSearch" in next(g["Parameters"] for g in groups if g["Label"]["default"] == "Features")
    assert root["Conditions"]["ImageSearchEnabled"] == {"Fn::Equals": [{"Ref": "ImageSearch"}, "yes"]}
    (stack,) = [v for k, v in root["Resources"].items() if k.startswith("ImageSearchStack")]
    assert stack["Type"] == "AWS::CloudFormation::Stack" and stack["Condition"] == "ImageSearchEnabled"


# -- the nested stack -------------------------------------------------------------------------------------------------
def test_the_vector_bucket_is_kept_on_uninstall_and_named_by_cloudformation(search_template):
    _, bucket = only(search_template, "AWS::S3Vectors::VectorBucket")
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    assert "VectorBucketName" not in bucket.get("Properties", {})


def test_the_search_function_is_told_its_bucket_name(search_template):
    _, function = only(search_template, "AWS::Lambda::Function")
    variables = function["Properties"]["Environment"]["Variables"]
    assert search.VECTOR_BUCKET_ENV == stores.VECTOR_BUCKET_ENV
    assert search.NOT_DEPLOYED == stores.NOT_DEPLOYED  # the mock route and a directly invoked function say the same
    bucket_id, _ = only(search_template, "AWS::S3Vectors::VectorBucket")
    # Ref of a vector bucket is its ARN; the name is what follows ":bucket/".
    assert variables[search.VECTOR_BUCKET_ENV] == {"Fn::Select": [1, {"Fn::Split": [":bucket/", {"Ref": bucket_id}]}]}
    sample = {"Fn::Select": [1, {"Fn::Split": [":bucket/", SAMPLE_BUCKET_ARN]}]}
    assert Evaluator({}, {}).resolve(sample) == "imagesimilarity-vectorbucket-abc123"
    assert "ALLOWED_S3_BUCKETS" in variables  # url inputs follow the same bucket rule as pair mode


def test_the_search_function_runs_the_service_image_sized_like_the_lambda_backend(synthesized, search_template):
    _, function = only(search_template, "AWS::Lambda::Function")
    (backend,) = resources_of(synthesized.nested_template("LambdaBackend"), "AWS::Lambda::Function").values()
    assert function["Properties"]["PackageType"] == "Image"
    image_tag = function["Properties"]["Code"]["ImageUri"]["Fn::Join"][1][-1].rsplit(":", 1)[1]
    assert image_tag == backend["Properties"]["Code"]["ImageUri"]["Fn::Join"][1][-1].rsplit(":", 1)[1]
    assert function["Properties"]["Timeout"] == backend["Properties"]["Timeout"] < 29


def test_vector_permissions_name_only_this_bucket_and_its_indexes(search_template):
    bucket_id, _ = only(search_template, "AWS::S3Vectors::VectorBucket")
    bucket = {"Ref": bucket_id}
    indexes = {"Fn::Join": ["", [bucket, "/index/*"]]}
    statements = vector_statements(search_template)
    assert statements
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert statement["Resource"] in (bucket, indexes), statement
        assert "s3vectors:*" not in json.dumps(statement["Action"])
    granted = {
        action for s in statements for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    # Never the bucket's own administration: the stack manages the bucket, the function only its indexes.
    assert not granted & {
        "s3vectors:DeleteVectorBucket",
        "s3vectors:PutVectorBucketPolicy",
        "s3vectors:CreateVectorBucket",
    }
    (tagging,) = [s for s in statements if s["Action"] == "s3vectors:TagResource"]
    assert tagging["Condition"] == {"ForAllValues:StringEquals": {"aws:TagKeys": [s3vectors_store.MODEL_VERSION_TAG]}}
    assert search.MODEL_VERSION_TAG == s3vectors_store.MODEL_VERSION_TAG


def test_the_role_allows_every_call_the_store_makes():
    """Run the store's every operation on moto, record the S3 Vectors calls, and find each among the granted actions."""
    called: set[str] = set()
    with moto_s3vectors_client() as client:
        client.meta.events.register("before-call.s3vectors", lambda model, **_: called.add(model.name))
        store = s3vectors_store.S3VectorsStore(BUCKET, client=client)
        vectors = np.eye(2, 512, dtype=np.float32)
        store.upsert("album", ["a", "b"], vectors, [{}, {}], "v1")
        store.describe("album")
        store.search("album", vectors[0], 2, 0.0, "v1")
        store.delete_item("album", "a")
        store.delete_collection("album")
    granted = {*search.INDEX_ACTIONS, "s3vectors:GetVectorBucket", "s3vectors:TagResource"}
    assert {f"s3vectors:{name}" for name in called} <= granted
    # QueryVectors with returnMetadata also needs GetVectors (QueryVectors API reference).
    assert "s3vectors:GetVectors" in granted


def test_the_pair_mode_backends_get_no_vector_permission(synthesized):
    for prefix in ("LambdaBackend", "SageMakerBackend"):
        assert "s3vectors" not in json.dumps(synthesized.nested_template(prefix)["Resources"]), prefix


def test_api_gateway_may_invoke_the_search_function_for_collections_only(search_template):
    _, permission = only(search_template, "AWS::Lambda::Permission")
    assert permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
    assert "/collections/*" in json.dumps(permission["Properties"]["SourceArn"])


# -- routes in every combination ------------------------------------------------------------------------------------
def test_every_combination_has_the_search_routes_exactly_when_asked(deployments):
    for deployment in deployments:
        wanted = deployment.parameters["ImageSearch"] == "yes"
        api = has_api(deployment.parameters)
        methods = search_methods(deployment)
        # The routes live with the API (infra.api); without ImageSearch they answer 404 "not deployed".
        assert set(methods) == (SEARCH_METHODS if api else set()), deployment.parameters
        stacks = {lid for lid in deployment.nested if lid.startswith("ImageSearchStack")}
        assert bool(stacks) == wanted
        assert ({"ImageSearch", "ImageSearchVectorBucket"} <= set(deployment.root.outputs)) == wanted
        if not wanted:
            assert not {"ImageSearch", "ImageSearchVectorBucket"} & set(deployment.root.outputs)
            assert {p["Integration"]["Type"] for (_, m), p in methods.items() if m != "OPTIONS"} <= {"MOCK"}
            continue
        assert "ApiStageUrl" in deployment.root.outputs  # the API exists for search alone too
        for (path, http_method), props in methods.items():
            if http_method == "OPTIONS":
                assert props["AuthorizationType"] == "NONE"  # browsers' preflights carry no credentials
                continue
            assert props["AuthorizationType"] == deployment.parameters["APIGatewayAuthorization"], path
            assert props["Integration"]["Type"] == "AWS_PROXY"
            (stack,) = stacks
            assert stack in json.dumps(props["Integration"]["Uri"]), "served by the search function"


def test_preflights_list_each_paths_methods(deployments):
    on = next(d for d in deployments if d.parameters["ImageSearch"] == "yes")
    methods = search_methods(on)
    for (path, http_method), props in methods.items():
        if http_method != "OPTIONS":
            continue
        headers = props["Integration"]["IntegrationResponses"][0]["ResponseParameters"]
        allowed = set(headers["method.response.header.Access-Control-Allow-Methods"].strip("'").split(","))
        assert allowed == {m for p, m in methods if p == path}, path


def test_switching_search_off_keeps_the_routes_as_404s_and_deploys_once(deployments):
    checked = 0
    for before in deployments:
        if before.parameters["ImageSearch"] != "yes" or before.parameters["ImageSimilarity"] != "yes":
            continue
        after = next((d for d in deployments if d.parameters == {**before.parameters, "ImageSearch": "no"}), None)
        if after is None:
            continue
        transition = Transition(before, after)
        methods = search_methods(after)
        assert set(methods) == SEARCH_METHODS
        assert {p["Integration"]["Type"] for (_, m), p in methods.items() if m != "OPTIONS"} == {"MOCK"}
        _, unmanaged = transition.served()
        assert unmanaged == set() and transition.served_targets_missing() == []
        assert transition.deployment_calls() == 1  # in the update phase; nothing redeploys after the deletion
        assert not transition.collisions()
        checked += 1
    assert checked


# -- regions --------------------------------------------------------------------------------------------------------
def test_cfn_lint_accepts_the_search_stack_in_both_partitions(synthesized):
    (path,) = [p for p in synthesized.template_paths if "ImageSearchStack" in p.name]
    regions = ["us-east-1", "cn-north-1", "cn-northwest-1"]
    assert [str(match) for match in lint_file(path, ManualArgs(regions=regions))] == []


def test_in_a_region_without_s3_vectors_only_the_search_stack_is_refused(synthesized):
    """cfn-lint's region schemas list where each resource type exists; il-central-1 has no S3 Vectors (cfn-lint
    1.58.0). The root template has no S3 Vectors type, so the stack still deploys there with ImageSearch=no."""
    (search_path,) = [p for p in synthesized.template_paths if "ImageSearchStack" in p.name]
    findings = [str(m) for m in lint_file(search_path, ManualArgs(regions=["il-central-1"]))]
    assert findings and all("AWS::S3Vectors::VectorBucket" in f for f in findings), findings
    assert "S3Vectors" not in json.dumps(synthesized.root["Resources"])
