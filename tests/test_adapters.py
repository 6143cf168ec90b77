"""Every entry point (core, Lambda, local server, SageMaker server, CLI) gives the same answer to the same input."""

from __future__ import annotations

import base64
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from helpers import b64, free_port, wait_for_ping
from image_similarity.adapters import cli, lambda_handler

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ROOT / "functions"


@pytest.fixture
def lambda_with_test_service(monkeypatch, service):
    monkeypatch.setattr(lambda_handler, "default_service", lambda: service)
    return lambda_handler.handler


@pytest.fixture
def cli_with_test_service(monkeypatch, service):
    monkeypatch.setattr(cli.common, "default_service", lambda: service)
    return cli.main


@pytest.fixture(scope="module")
def sagemaker_server():
    """The container's `serve` entry point (functions/entrypoint.sh), run without Docker on a free port."""
    port = free_port()
    env = {**os.environ, "SAGEMAKER_BIND_TO_PORT": str(port), "PYTHONPATH": str(FUNCTIONS),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.Popen(["sh", str(FUNCTIONS / "entrypoint.sh"), "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    wait_for_ping(base, proc)
    yield base
    proc.terminate()
    proc.wait(timeout=10)


def payloads(cat_jpeg: bytes, coffee_png: bytes) -> list[dict]:
    return [
        {"img": b64(cat_jpeg)},
        {"img_1": b64(cat_jpeg), "img_2": b64(coffee_png)},
        {"img": "definitely not base64 !"},
        {"url": "http://10.0.0.1/a.jpg"},
        {"img_1": b64(cat_jpeg)},
    ]


def test_all_adapters_give_identical_answers(service, api_server, sagemaker_server, lambda_with_test_service,
                                             cat_jpeg, coffee_png):
    for payload in payloads(cat_jpeg, coffee_png):
        core = service.handle(json.dumps(payload))
        body = json.dumps(payload)
        local = requests.post(f"{api_server}/image-similarity", data=body, timeout=30)
        sagemaker = requests.post(f"{sagemaker_server}/invocations", data=body, timeout=30)
        event = lambda_with_test_service({"httpMethod": "POST", "path": "/image-similarity", "body": body}, None)
        event_b64 = lambda_with_test_service({"body": base64.b64encode(body.encode()).decode(),
                                              "isBase64Encoded": True}, None)
        for status, answer in [(local.status_code, local.json()), (sagemaker.status_code, sagemaker.json()),
                               (event["statusCode"], json.loads(event["body"])),
                               (event_b64["statusCode"], json.loads(event_b64["body"]))]:
            assert status == core.status
            assert answer == core.body


def test_cli_embed_and_compare_match_the_api(tmp_path, capsys, call, cli_with_test_service, cat_jpeg, coffee_png):
    (tmp_path / "cat.jpg").write_bytes(cat_jpeg)
    (tmp_path / "coffee.png").write_bytes(coffee_png)
    assert cli_with_test_service(["embed", str(tmp_path / "cat.jpg")]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["result"] == call({"img": b64(cat_jpeg)})[1]["result"]
    assert cli_with_test_service(["compare", str(tmp_path / "cat.jpg"), str(tmp_path / "coffee.png")]) == 0
    similarity = json.loads(capsys.readouterr().out)["similarity"]
    assert similarity == call({"img_1": b64(cat_jpeg), "img_2": b64(coffee_png)})[1]["similarity"]


def test_cli_reports_unreadable_files_and_fails(tmp_path, capsys, cli_with_test_service):
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff" + bytes(10))  # a missing path is a usage error (exit 2)
    assert cli_with_test_service(["embed", str(tmp_path / "notes.txt"), str(tmp_path / "broken.jpg")]) == 1
    err = capsys.readouterr().err
    assert "JPEG, PNG, BMP" in err and "broken.jpg: the JPEG image header could not be read" in err


def test_lambda_response_has_cors_and_json_headers(lambda_with_test_service, cat_jpeg):
    response = lambda_with_test_service({"body": json.dumps({"img": b64(cat_jpeg)})}, None)
    assert response["headers"]["Access-Control-Allow-Origin"] == "*"
    assert response["headers"]["Content-Type"] == "application/json"
    assert len(json.loads(response["body"])["result"]) == 512


def test_lambda_bad_base64_event_body_is_a_400(lambda_with_test_service):
    response = lambda_with_test_service({"body": "%%%", "isBase64Encoded": True}, None)
    assert response["statusCode"] == 400
    assert "message" in json.loads(response["body"])


def test_lambda_event_without_body_is_a_400(lambda_with_test_service):
    assert lambda_with_test_service({"httpMethod": "POST"}, None)["statusCode"] == 400


def test_ping_reports_the_model_version(api_server, service):
    response = requests.get(f"{api_server}/ping", timeout=5)
    assert response.status_code == 200
    assert response.json()["model_version"] == service.model_version
    assert response.headers["X-Model-Version"] == service.model_version


def test_ping_publishes_the_running_models_calibrated_thresholds(api_server, service):
    thresholds = requests.get(f"{api_server}/ping", timeout=5).json()["thresholds"]
    assert thresholds == service.embedder.info.thresholds
    assert 0.5 < thresholds["fpr_0.01"] < thresholds["fpr_0.001"] < 1.0


def test_local_server_unknown_path_and_wrong_method(api_server):
    assert requests.get(f"{api_server}/nope", timeout=5).status_code == 404
    wrong = requests.get(f"{api_server}/image-similarity", timeout=5)
    assert wrong.status_code == 405 and "POST" in wrong.json()["message"]


def test_dockerfile_cmd_names_an_importable_handler():
    dockerfile = (FUNCTIONS / "Dockerfile").read_text()
    (handler_path,) = re.findall(r'^CMD \["([\w.]+)"\]', dockerfile, re.MULTILINE)
    module, func = handler_path.rsplit(".", 1)
    assert callable(getattr(importlib.import_module(module), func))
    assert 'ENTRYPOINT ["/entrypoint.sh"]' in dockerfile


def test_container_installs_only_the_service_requirements():
    lines = (FUNCTIONS / "requirements.txt").read_text().lower().splitlines()
    packages = {line.split("==")[0] for line in lines if line and not line.startswith("#")}
    assert packages.isdisjoint({"torch", "opencv-python", "opencv-python-headless", "tensorflow", "faiss-cpu"})
    assert "COPY requirements.txt" in (FUNCTIONS / "Dockerfile").read_text()


@pytest.mark.parametrize("module", ["lambda_handler", "batch_lambda", "sagemaker_server", "explorer_lambda"])
def test_the_images_entry_points_import_without_the_local_stores_index(module):
    """FAISS serves the local collection store and the CLI only (functions/requirements-cli.txt): no entry point of
    the image may need it."""
    code = ("import sys; sys.modules['faiss'] = None; "
            f"import image_similarity.adapters.{module}; print('faiss' in sys.modules and sys.modules['faiss'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "None", done.stderr
