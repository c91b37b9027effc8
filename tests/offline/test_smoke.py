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
