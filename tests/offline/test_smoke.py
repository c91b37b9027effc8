"""`modelops smoke` against a moto server: deployed fallbacks answer, missing ones are reported."""

from __future__ import annotations

import json

import boto3
import pytest

from components.config import parse_stack_config
from offline.cli import main
from offline.smoke import smoke
from tests.aws_fakes import aws_env
from tests.conftest import stack_raw

pytestmark = pytest.mark.slow  # starts servers or plans several stacks


@pytest.fixture
def moto_lambda(moto_server, monkeypatch):
    moto_server.reset()
    # Without Docker, moto's Lambda echoes the payload instead of running the image.
    moto_server.post("/moto-api/config", {"lambda": {"use_docker": False}})
    aws_env(monkeypatch, moto_server.url)
    return boto3.client("lambda", region_name="us-east-1")


def deploy(client, name: str, version: str, alias: str = "live") -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(
        RoleName=f"{name}-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]["Arn"]
    client.create_function(
        FunctionName=name,
        Role=role,
        PackageType="Image",
        Code={"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/m/s@sha256:" + "d" * 64},
        Publish=True,
    )
    client.create_alias(FunctionName=name, Name=alias, FunctionVersion="1", Description=f"model version {version}")


def test_a_deployed_fallback_answers(moto_lambda, capsys):
    deploy(moto_lambda, "modelops-dev-sentiment", "1.2.0")
    results = smoke(parse_stack_config(stack_raw("dev")), "dev")
    assert [(r.model, r.outcome, r.status) for r in results] == [("sentiment", "ok", 200)]
    assert results[0].latency_ms is not None and results[0].latency_ms > 0
    assert main(["smoke", "--stack", "dev"]) == 0
    assert "modelops-dev-sentiment:live" in capsys.readouterr().out


def test_a_fallback_still_serving_the_previous_version_fails(moto_lambda, capsys):
    deploy(moto_lambda, "modelops-dev-sentiment", "1.1.0")
    results = smoke(parse_stack_config(stack_raw("dev")), "dev")
    assert [(r.model, r.outcome) for r in results] == [("sentiment", "fail")]
    assert "serves model version 1.1.0, not model version 1.2.0" in results[0].detail


def test_a_missing_fallback_fails_the_smoke_check(moto_lambda, capsys):
    assert main(["smoke", "--stack", "dev"]) == 1
    out = capsys.readouterr().out
    assert "sentiment      fail" in out and "ResourceNotFoundException" in out


def test_auto_models_without_a_function_are_skipped_not_failed(moto_lambda):
    deploy(moto_lambda, "modelops-prod-sentiment", "1.3.0")
    results = {r.model: r for r in smoke(parse_stack_config(stack_raw("prod")), "prod")}
    assert results["sentiment"].outcome == "ok"
    assert results["summarizer"].outcome == "skipped"
    assert "chat" not in results  # fallback none: nothing to smoke


def test_endpoints_get_their_runtimes_sample_request_through_the_gateway(capsys):
    """`smoke --endpoints`: vLLM gets a one-token completion, Triton is asked whether the model is ready, a custom
    server its samplePayload; each through the gateway's route (`/<model>` prefix), 5xx retried, 4xx not."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Gateway(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            seen.append((self.command, self.path, body))
            status = 503 if self.path.startswith("/vision/") else 200
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

        do_GET = do_POST = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code = main(["smoke", "--stack", "prod", "--endpoints", "--base-url", f"http://127.0.0.1:{server.server_port}"])
    finally:
        server.shutdown()
    out = capsys.readouterr().out
    assert ("POST", "/chat/v1/completions", {"model": "chat", "prompt": "ping", "max_tokens": 1}) in seen
    assert ("GET", "/summarizer/v2/models/summarizer/ready", None) in seen
    assert ("POST", "/sentiment/", {"inputs": "ping"}) in seen
    assert sum(1 for _, path, _ in seen if path.startswith("/vision/")) == 3  # a 503, retried, still failing
    assert code == 1 and "vision" in out and "fail" in out
