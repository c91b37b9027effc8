"""ServerlessFallback: a model as an AWS Lambda container function, for when GPUs are off or short.

Creates:
- an execution role with least privilege: its own log group, read-only on the model's artifact
  prefix, X-Ray writes through the AWS managed policy;
- a log group with retention;
- an image-package Lambda function from the model's image pinned by digest, with memory, timeout and
  ephemeral storage within Lambda's limits, reserved concurrency as a cost cap and active tracing;
- a stable alias (`live`) that each release moves to the new function version, and a function URL
  on it with AWS_IAM authorisation (the URL, and so the exported endpoint, survives releases);
- CloudWatch alarms on errors, throttles and duration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from .common import type_token
from .config import lambda_function_name as function_name_for  # noqa: F401 - the name __main__ and smoke use
from .model_service import artifact_read_policy

LAMBDA_MAX_MEMORY_MB = 10240
LAMBDA_MAX_TIMEOUT_SECONDS = 900
LAMBDA_MAX_EPHEMERAL_MB = 10240
XRAY_WRITE_POLICY_ARN = "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"


@dataclass(frozen=True)
class ServerlessFallbackArgs:
    function_name: str
    """Lambda function name (at most 64 characters)."""
    image_uri: pulumi.Input[str]
    """The model image, pinned by digest, in this account's ECR."""
    version: str
    """The model version: names the alias."""
    region: str
    """AWS region (ARNs of the log group)."""
    account_id: str
    """AWS account (ARNs of the log group)."""
    memory_mb: int = 4096
    """Memory (and so CPU) of the function."""
    timeout_seconds: int = 60
    """Longest invocation."""
    ephemeral_storage_mb: int = 2048
    """/tmp size: where the function unpacks the model."""
    reserved_concurrency: int = 5
    """Concurrent executions cap: the cost cap."""
    architecture: str = "x86_64"
    """`x86_64` or `arm64`, matching the image."""
    artifact_bucket: str | None = None
    """S3 bucket of the model artifact."""
    artifact_prefix: str = ""
    """Key prefix of the artifact."""
    log_retention_days: int = 30
    """CloudWatch Logs retention."""
    environment: dict[str, str] = field(default_factory=dict)
    """Environment variables."""
    environment_is_secret: bool = False
    """The values came from secret config: the variables are a secret output (encrypted in the state)."""
    tags: dict[str, str] = field(default_factory=dict)
    """AWS tags."""
    alarm_topic_arn: str | None = None
    """SNS topic the alarms notify when they fire and when they recover."""


class ServerlessFallback(pulumi.ComponentResource):
    """A model's serverless fallback. Secure defaults: the function URL requires AWS_IAM (never NONE),
    the role can only write its own logs and read its model's prefix, and reserved concurrency caps
    what a runaway client can spend."""

    function_name: pulumi.Output[str]
    """The Lambda function's name."""
    function_arn: pulumi.Output[str]
    """The function's ARN."""
    alias_name: pulumi.Output[str]
    """The alias serving this model version."""
    url: pulumi.Output[str]
    """The alias's function URL (IAM-signed requests only)."""

    def __init__(self, name: str, args: ServerlessFallbackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("ServerlessFallback"), name, None, opts)
        _check_limits(args)
        child = pulumi.ResourceOptions(parent=self)
        log_group_name = f"/aws/lambda/{args.function_name}"
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", name=log_group_name, retention_in_days=args.log_retention_days, tags=args.tags, opts=child
        )
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            tags=args.tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-policy", role=role.id, policy=json.dumps(execution_policy(args, log_group_name)), opts=child
        )
        aws.iam.RolePolicyAttachment(f"{name}-xray", role=role.name, policy_arn=XRAY_WRITE_POLICY_ARN, opts=child)

        # the server reports the version it serves (as on pods), and fetches its artifact from MODEL_URI
        env = {**args.environment, "MODEL_VERSION": args.version}
        if args.artifact_bucket:
            env["MODEL_URI"] = f"s3://{args.artifact_bucket}/{args.artifact_prefix}".rstrip("/")
        function = aws.lambda_.Function(
            f"{name}-function",
            name=args.function_name,
            package_type="Image",
            image_uri=args.image_uri,
            role=role.arn,
            architectures=[args.architecture],
            memory_size=args.memory_mb,
            timeout=args.timeout_seconds,
            ephemeral_storage={"size": args.ephemeral_storage_mb},
            reserved_concurrent_executions=args.reserved_concurrency,
            tracing_config={"mode": "Active"},
            logging_config={"log_format": "JSON", "log_group": log_group.name},
            environment={"variables": pulumi.Output.secret(env) if args.environment_is_secret else env}
            if env
            else None,
            publish=True,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group]),
        )
        # One alias for every release: renaming it per version would replace the alias and its function
        # URL at each release, changing the endpoint clients call. The version moves; the name stays.
        alias = aws.lambda_.Alias(
            f"{name}-alias",
            name=LIVE_ALIAS,
            function_name=function.name,
            function_version=function.version,
            description=alias_description(args.version),
            opts=child,
        )
        url = aws.lambda_.FunctionUrl(
            f"{name}-url",
            function_name=function.name,
            qualifier=alias.name,
            authorization_type="AWS_IAM",
            opts=child,
        )
        self._alarms(name, args, function)

        self.function_name = function.name
        self.function_arn = function.arn
        self.alias_name = alias.name
        self.url = url.function_url
        self.register_outputs(
            {
                "function_name": self.function_name,
                "function_arn": self.function_arn,
                "alias_name": self.alias_name,
                "url": self.url,
            }
        )

    def _alarms(self, name: str, args: ServerlessFallbackArgs, function: aws.lambda_.Function) -> None:
        dimensions = {"FunctionName": function.name}
        specs = [
            ("errors", "Errors", "Sum", 1, "the fallback returned errors"),
            ("throttles", "Throttles", "Sum", 1, "the fallback hit its concurrency cap"),
            (
                "duration",
                "Duration",
                "Maximum",
                int(args.timeout_seconds * 1000 * 0.8),
                "invocations ran above 80% of the timeout",
            ),
        ]
        for role, metric, statistic, threshold, what in specs:
            aws.cloudwatch.MetricAlarm(
                f"{name}-{role}-alarm",
                alarm_description=f"{args.function_name}: {what}",
                namespace="AWS/Lambda",
                metric_name=metric,
                statistic=statistic,
                dimensions=dimensions,
                period=300,
                evaluation_periods=1,
                threshold=threshold,
                comparison_operator="GreaterThanOrEqualToThreshold",
                treat_missing_data="notBreaching",
                alarm_actions=[args.alarm_topic_arn] if args.alarm_topic_arn else None,
                ok_actions=[args.alarm_topic_arn] if args.alarm_topic_arn else None,
                tags=args.tags,
                opts=pulumi.ResourceOptions(parent=self),
            )


LIVE_ALIAS = "live"
"""The alias clients and the function URL use; each release points it at the new function version."""


def alias_description(version: str) -> str:
    """The alias's description names the model version it serves (what `modelops smoke` verifies)."""
    return f"model version {version}"


def execution_policy(args: ServerlessFallbackArgs, log_group_name: str) -> dict:
    """Logs to its own group, read its own model prefix: every statement names its resource."""
    log_group_arn = f"arn:aws:logs:{args.region}:{args.account_id}:log-group:{log_group_name}"
    statements = [
        {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": f"{log_group_arn}:*"}
    ]
    if args.artifact_bucket:
        statements += artifact_read_policy(args.artifact_bucket, args.artifact_prefix)["Statement"]
    return {"Version": "2012-10-17", "Statement": statements}


def _check_limits(args: ServerlessFallbackArgs) -> None:
    problems = []
    if not 128 <= args.memory_mb <= LAMBDA_MAX_MEMORY_MB:
        problems.append(f"memory {args.memory_mb} MB is outside Lambda's 128-{LAMBDA_MAX_MEMORY_MB} MB")
    if not 1 <= args.timeout_seconds <= LAMBDA_MAX_TIMEOUT_SECONDS:
        problems.append(f"timeout {args.timeout_seconds}s is outside Lambda's 1-{LAMBDA_MAX_TIMEOUT_SECONDS}s")
    if not 512 <= args.ephemeral_storage_mb <= LAMBDA_MAX_EPHEMERAL_MB:
        problems.append(f"ephemeral storage {args.ephemeral_storage_mb} MB is outside 512-{LAMBDA_MAX_EPHEMERAL_MB} MB")
    if len(args.function_name) > 64:
        problems.append(f"function name {args.function_name!r} is longer than 64 characters")
    if problems:
        raise ValueError(f"ServerlessFallback {args.function_name}: " + "; ".join(problems))
