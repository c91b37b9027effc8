"""ServerlessFallback: IAM-only URL, concurrency cap, least-privilege role, pinned image, Lambda limits."""

from __future__ import annotations

import json
from typing import cast

import pulumi
import pytest

from components import ServerlessFallback, ServerlessFallbackArgs
from components.config import lambda_environment
from modelops_cli.offline.engine import ProgramError, plan_of
from tests.components.conftest import cluster_config, model_config

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/m/sentiment@sha256:" + "c" * 64
MODEL = model_config(
    version="1.2.0",
    artifact_uri="s3://acme-models-dev/sentiment/1.2.0",
    serverless={"memory_mb": 3008, "reserved_concurrency": 2},
)
ARGS = ServerlessFallbackArgs(
    model=MODEL,
    cluster=cluster_config(),
    function_name="modelops-dev-sentiment",
    image_uri=IMAGE,
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
    release = build(lambda: ServerlessFallback("s", {**ARGS, "model": MODEL.model_copy(update={"version": "1.3.0"})}))
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
    "serverless, message",
    [
        ({"memory_mb": 20000}, "serverless.memory_mb\n  Input should be less than or equal to 10240"),
        ({"timeout_seconds": 901}, "serverless.timeout_seconds\n  Input should be less than or equal to 900"),
        (
            {"ephemeral_storage_mb": 100},
            "serverless.ephemeral_storage_mb\n  Input should be greater than or equal to 512",
        ),
    ],
)
def test_lambda_limits_come_from_the_schema_even_when_hosted(serverless, message):
    """Hosted for another language, the component gets plain dicts: the schema validates them, so Lambda's limits
    are declared once (the schema's bounds) and hold for every caller."""
    hosted = {
        **ARGS,
        "model": {**MODEL.model_dump(), "serverless": serverless},
        "cluster": ARGS["cluster"].model_dump(),
    }
    with pytest.raises(ProgramError, match=message):
        plan_of(lambda: ServerlessFallback("s", cast(ServerlessFallbackArgs, hosted)))


def test_a_hosted_call_with_plain_dicts_plans_as_the_python_one(build):
    hosted = {**ARGS, "model": MODEL.model_dump(), "cluster": ARGS["cluster"].model_dump()}
    assert (
        build(lambda: ServerlessFallback("s", cast(ServerlessFallbackArgs, hosted))).plan
        == build(lambda: ServerlessFallback("s", ARGS)).plan
    )


def test_alarms_notify_the_configured_topic(build):
    topic = "arn:aws:sns:us-east-1:123456789012:ml-oncall"
    built = build(lambda: ServerlessFallback("s", {**ARGS, "cluster": cluster_config(alarm_topic_arn=topic)}))
    for role in ("errors", "throttles", "duration"):
        alarm = built.inputs(f"s-{role}-alarm")
        assert alarm["alarmActions"] == [topic] and alarm["okActions"] == [topic]


def test_the_alarm_topic_may_be_another_resources_output(build):
    """An SNS topic the platform's program creates reaches the alarms as its Output, over the nested cluster's."""
    topic = "arn:aws:sns:us-east-1:123456789012:platform-oncall"

    def program():
        created = pulumi.Output.from_input(topic).apply(lambda arn: arn)
        other = cluster_config(alarm_topic_arn="arn:aws:sns:us-east-1:123456789012:ml-oncall")
        ServerlessFallback("s", {**ARGS, "cluster": other, "alarm_topic_arn": created})

    built = build(program)
    for role in ("errors", "throttles", "duration"):
        alarm = built.inputs(f"s-{role}-alarm")
        assert alarm["alarmActions"] == [topic] and alarm["okActions"] == [topic]
    assert build(lambda: ServerlessFallback("s", ARGS)).inputs("s-errors-alarm").get("alarmActions") is None


def test_the_function_gets_the_environment_validation_measured():
    """One builder for the Lambda environment: what the function is given is what the stack schema counts
    against Lambda's 4 KB."""
    model = model_config(version="2.0.0", artifact_uri="s3://acme/m/2.0.0/", env={"LOG_LEVEL": "info"})
    assert lambda_environment(model) == {
        "LOG_LEVEL": "info",
        "MODEL_VERSION": "2.0.0",
        "MODEL_URI": "s3://acme/m/2.0.0",
    }
    function = plan_of(lambda: ServerlessFallback("s", {**ARGS, "model": model}))["steps"]
    inputs = next(s["newState"]["inputs"] for s in function if s["urn"].endswith("::s-function"))
    assert inputs["environment"]["variables"] == lambda_environment(model)
