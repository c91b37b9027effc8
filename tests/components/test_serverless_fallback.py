"""ServerlessFallback: IAM-only URL, concurrency cap, least-privilege role, pinned image, Lambda limits."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from components import ServerlessFallback, ServerlessFallbackArgs
from components.serverless_fallback import _check_limits

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/m/sentiment:1.2.0@sha256:" + "c" * 64
ARGS = ServerlessFallbackArgs(
    function_name="modelops-dev-sentiment",
    image_uri=IMAGE,
    version="1.2.0",
    region="us-east-1",
    account_id="123456789012",
    memory_mb=3008,
    reserved_concurrency=2,
    artifact_bucket="acme-models-dev",
    artifact_prefix="sentiment/1.2.0",
    log_retention_days=7,
)


def test_function_is_capped_traced_and_pinned(build):
    function = build(lambda: ServerlessFallback("s", ARGS)).inputs("s-function")
    assert function["packageType"] == "Image" and function["imageUri"] == IMAGE
    assert function["reservedConcurrentExecutions"] == 2
    assert function["tracingConfig"] == {"mode": "Active"}
    assert function["memorySize"] == 3008 and function["publish"] is True
    assert function["environment"]["variables"]["MODEL_URI"] == "s3://acme-models-dev/sentiment/1.2.0"


def test_url_requires_iam_on_a_stable_alias_whose_version_moves(build):
    built = build(lambda: ServerlessFallback("s", ARGS))
    url = built.inputs("s-url")
    assert url["authorizationType"] == "AWS_IAM"
    assert url["qualifier"] == "live" == built.inputs("s-alias")["name"]
    assert built.inputs("s-alias")["functionVersion"] == "1"
    assert built.inputs("s-alias")["description"] == "model version 1.2.0"
    # A release changes the alias's version and description only: alias and URL are not replaced, so
    # the exported endpoint stays the same.
    release = build(lambda: ServerlessFallback("s", replace(ARGS, version="1.3.0")))
    assert release.inputs("s-url") == url
    assert release.inputs("s-alias")["name"] == "live"


def test_role_names_every_resource_it_writes(build):
    built = build(lambda: ServerlessFallback("s", ARGS))
    policy = json.loads(built.inputs("s-policy")["policy"])
    for statement in policy["Statement"]:
        assert statement["Resource"] != "*"
    logs = policy["Statement"][0]
    assert logs["Resource"] == "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/modelops-dev-sentiment:*"
    assert built.inputs("s-xray")["policyArn"] == "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"
    assert built.inputs("s-logs")["retentionInDays"] == 7


def test_alarms_cover_errors_throttles_and_duration(build):
    built = build(lambda: ServerlessFallback("s", ARGS))
    metrics = {a["inputs"]["metricName"]: a["inputs"]["threshold"] for a in built.of_type("MetricAlarm")}
    assert metrics == {"Errors": 1, "Throttles": 1, "Duration": 48000}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"memory_mb": 20000}, "memory 20000 MB is outside Lambda's 128-10240 MB"),
        ({"timeout_seconds": 901}, "timeout 901s is outside Lambda's 1-900s"),
        ({"ephemeral_storage_mb": 100}, "ephemeral storage 100 MB is outside 512-10240 MB"),
        ({"function_name": "x" * 65}, "longer than 64 characters"),
    ],
)
def test_lambda_limits_are_enforced(change, message):
    with pytest.raises(ValueError, match=message):
        _check_limits(replace(ARGS, **change))


def test_alarms_notify_the_configured_topic(build):
    topic = "arn:aws:sns:us-east-1:123456789012:ml-oncall"
    built = build(lambda: ServerlessFallback("s", replace(ARGS, alarm_topic_arn=topic)))
    for role in ("errors", "throttles", "duration"):
        alarm = built.inputs(f"s-{role}-alarm")
        assert alarm["alarmActions"] == [topic] and alarm["okActions"] == [topic]
