"""The optional operator settings (issue 14): a WAF web ACL, a custom domain, alarms with an optional SNS topic. Each is
off by default (tests/infra/test_infra_parameters.py), and each adds exactly its resources when set."""

from __future__ import annotations

import pytest
from cfn_matrix import Deployment, parameter_samples


@pytest.fixture(scope="module")
def defaults(synthesized) -> dict[str, str]:
    return {name: values[0] for name, values in parameter_samples(synthesized.root).items()}


def _evaluate(synthesized, parameters: dict[str, str]) -> Deployment:
    return Deployment.evaluate(synthesized.root, synthesized.nested, parameters)


def _root_resources(deployment: Deployment, kind: str) -> list[dict]:
    return [props for (stack, _), (k, props) in deployment.resources.items() if stack == "root" and k == kind]


def test_web_acl_is_associated_with_the_stage_only_when_given(synthesized, defaults):
    arn = "arn:aws:wafv2:us-east-1:111122223333:regional/webacl/images/0c9d6bd4"
    assert _root_resources(_evaluate(synthesized, defaults), "AWS::WAFv2::WebACLAssociation") == []
    (association,) = _root_resources(
        _evaluate(synthesized, {**defaults, "WebACLArn": arn}), "AWS::WAFv2::WebACLAssociation"
    )
    assert association["WebACLArn"] == arn
    parts = association["ResourceArn"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else "<>" for p in parts)
    assert text == "arn:aws:apigateway:us-east-1::/restapis/<>/stages/<>"
    stage_id = parts[-1]["Ref"]
    assert synthesized.root["Resources"][stage_id]["Type"] == "AWS::ApiGateway::Stage"
    # Nothing to protect once the API is uninstalled.
    off = {**defaults, "WebACLArn": arn, "ImageSimilarity": "no", "APIExplorer": "no"}
    assert _root_resources(_evaluate(synthesized, off), "AWS::WAFv2::WebACLAssociation") == []


def test_custom_domain_maps_the_stage_and_outputs_its_dns_target(synthesized, defaults):
    assert _root_resources(_evaluate(synthesized, defaults), "AWS::ApiGateway::DomainName") == []
    parameters = {
        **defaults,
        "CustomDomainName": "api.example.com",
        "CertificateArn": "arn:aws:acm:us-east-1:111122223333:certificate/0c9d6bd4",
    }
    deployment = _evaluate(synthesized, parameters)
    (domain,) = _root_resources(deployment, "AWS::ApiGateway::DomainName")
    assert (
        domain["DomainName"] == "api.example.com" and domain["RegionalCertificateArn"] == parameters["CertificateArn"]
    )
    assert domain["EndpointConfiguration"] == {"Types": ["REGIONAL"]} and domain["SecurityPolicy"] == "TLS_1_2"
    (mapping,) = _root_resources(deployment, "AWS::ApiGateway::BasePathMapping")
    assert synthesized.root["Resources"][mapping["Stage"]["Ref"]]["Type"] == "AWS::ApiGateway::Stage"
    assert {"CustomDomainTarget", "CustomDomainUrl"} <= set(deployment.root.outputs)
    assert deployment.root.resolve(synthesized.root["Outputs"]["CustomDomainUrl"]["Value"]) == (
        "https://api.example.com/image-similarity"
    )


def test_alarms_watch_5xx_latency_and_throttles_and_notify_the_topic_when_given(synthesized, defaults):
    assert _root_resources(_evaluate(synthesized, defaults), "AWS::CloudWatch::Alarm") == []
    topic = "arn:aws:sns:us-east-1:111122223333:alarms"
    alarms = _root_resources(
        _evaluate(synthesized, {**defaults, "Alarms": "yes", "AlarmTopicArn": topic}), "AWS::CloudWatch::Alarm"
    )
    by_metric = {a["MetricName"]: a for a in alarms}
    assert set(by_metric) == {"5XXError", "Latency", "Throttles"}
    assert by_metric["Latency"]["ExtendedStatistic"] == "p99"
    assert by_metric["5XXError"]["Statistic"] == "Average" and 0 < by_metric["5XXError"]["Threshold"] < 1
    assert {d["Name"] for d in by_metric["5XXError"]["Dimensions"]} == {"ApiName", "Stage"}
    assert by_metric["Throttles"]["Namespace"] == "AWS/Lambda"
    assert all(a["AlarmActions"] == [topic] and a["OKActions"] == [topic] for a in alarms)
    # Without a topic the alarms still exist, with no action; with SageMaker there is no function to throttle.
    quiet = _root_resources(_evaluate(synthesized, {**defaults, "Alarms": "yes"}), "AWS::CloudWatch::Alarm")
    assert len(quiet) == 3 and all(a["AlarmActions"] == [] for a in quiet)
    sagemaker = {**defaults, "Alarms": "yes", "InferenceBackend": "SageMaker"}
    assert {a["MetricName"] for a in _root_resources(_evaluate(synthesized, sagemaker), "AWS::CloudWatch::Alarm")} == {
        "5XXError",
        "Latency",
    }


def test_alarms_use_the_apis_name_and_stage(synthesized):
    alarm = next(
        r for r in synthesized.root["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"]["MetricName"] == "5XXError"
    )
    dimensions = {d["Name"]: d["Value"] for d in alarm["Properties"]["Dimensions"]}
    (api,) = [r for r in synthesized.root["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    assert dimensions["ApiName"] == api["Properties"]["Name"]
    assert synthesized.root["Resources"][dimensions["Stage"]["Ref"]]["Type"] == "AWS::ApiGateway::Stage"
