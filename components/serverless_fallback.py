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

import json
from typing import NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from .cluster_inputs import cluster_input, cluster_settings
from .common import as_model, type_token
from .config import ClusterConfig, ModelConfig, Platform, lambda_environment
from .model_service import artifact_read_policy


class ServerlessFallbackArgs(TypedDict):
    """A model as a Lambda function: the model and cluster as the stack schema declares them (memory, timeout,
    storage and concurrency bounds live there), and what the composition resolves."""

    model: ModelConfig
    """The model: version, artifact, env, `serverless` settings, the image's platform."""
    cluster: ClusterConfig
    """The account and region, and the SNS topic the alarms notify."""
    function_name: str
    """The Lambda function's name (`lambda_function_name(stack, model)` here, validated with the stack)."""
    image_uri: pulumi.Input[str]
    """The image, `repository@sha256:…`, in the account's ECR (the CPU build when there is one)."""
    log_retention_days: int
    """CloudWatch Logs retention (the environment's)."""
    alarm_topic_arn: NotRequired[pulumi.Input[str]]
    """The SNS topic the alarms notify as another resource or stack gives it, over `cluster.alarmTopicArn`."""
    env_is_secret: NotRequired[bool]
    """The env values came from secret config: the variables are a secret output (encrypted in the state)."""
    tags: NotRequired[dict[str, str]]
    """AWS tags."""


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
        # Hosted for another language, the component receives plain dicts: the schema's models validate them.
        self._model = as_model(ModelConfig, args["model"])
        cluster = cluster_settings(args["cluster"])
        self._function_name, self._tags = args["function_name"], args.get("tags", {})
        child = pulumi.ResourceOptions(parent=self)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/lambda/{self._function_name}",
            retention_in_days=args["log_retention_days"],
            tags=self._tags,
            opts=child,
        )
        role = self._execution_role(name, cluster)
        function = self._function(name, args, role, log_group)
        # One alias for every release: renaming it per version would replace the alias and its function
        # URL at each release, changing the endpoint clients call. The version moves; the name stays.
        alias = aws.lambda_.Alias(
            f"{name}-alias",
            name=LIVE_ALIAS,
            function_name=function.name,
            function_version=function.version,
            description=alias_description(self._model.version),
            opts=child,
        )
        url = aws.lambda_.FunctionUrl(
            f"{name}-url",
            function_name=function.name,
            qualifier=alias.name,
            authorization_type="AWS_IAM",
            opts=child,
        )
        self._alarms(name, function, cluster_input(args, cluster, "alarm_topic_arn"))

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

    def _execution_role(self, name: str, cluster: ClusterConfig) -> aws.iam.Role:
        """The function's role: writes its own log group, reads its model's prefix, sends traces."""
        child = pulumi.ResourceOptions(parent=self)
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
        role = aws.iam.Role(f"{name}-role", assume_role_policy=json.dumps(trust), tags=self._tags, opts=child)
        log_group_name, model = f"/aws/lambda/{self._function_name}", self._model
        aws.iam.RolePolicy(
            f"{name}-policy",
            role=role.id,
            policy=partition.apply(
                lambda p: json.dumps(execution_policy(p, cluster.region, cluster.account_id, model, log_group_name))
            ),
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-xray", role=role.name, policy_arn=partition.apply(xray_write_policy_arn), opts=child
        )
        return role

    def _function(
        self, name: str, args: ServerlessFallbackArgs, role: aws.iam.Role, log_group: aws.cloudwatch.LogGroup
    ) -> aws.lambda_.Function:
        settings, env = self._model.serverless, lambda_environment(self._model)
        platform = (self._model.cpu_image or self._model.image).platform
        return aws.lambda_.Function(
            f"{name}-function",
            name=self._function_name,
            package_type="Image",
            image_uri=args["image_uri"],
            role=role.arn,
            architectures=["arm64" if platform == Platform.LINUX_ARM64 else "x86_64"],
            memory_size=settings.memory_mb,
            timeout=settings.timeout_seconds,
            ephemeral_storage={"size": settings.ephemeral_storage_mb},
            reserved_concurrent_executions=settings.reserved_concurrency,
            tracing_config={"mode": "Active"},
            logging_config={"log_format": "JSON", "log_group": log_group.name},
            environment={"variables": pulumi.Output.secret(env) if args.get("env_is_secret") else env} if env else None,
            publish=True,
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group]),
        )

    def _alarms(self, name: str, function: aws.lambda_.Function, topic: pulumi.Input[str] | None) -> None:
        dimensions = {"FunctionName": function.name}
        timeout_seconds = self._model.serverless.timeout_seconds
        specs = [
            ("errors", "Errors", "Sum", 1, "the fallback returned errors"),
            ("throttles", "Throttles", "Sum", 1, "the fallback hit its concurrency cap"),
            (
                "duration",
                "Duration",
                "Maximum",
                int(timeout_seconds * 1000 * 0.8),
                "invocations ran above 80% of the timeout",
            ),
        ]
        # an alarm without an action notifies nobody: the topic when there is one
        actions = [topic] if topic is not None else None
        for role, metric, statistic, threshold, what in specs:
            aws.cloudwatch.MetricAlarm(
                f"{name}-{role}-alarm",
                alarm_description=f"{self._function_name}: {what}",
                namespace="AWS/Lambda",
                metric_name=metric,
                statistic=statistic,
                dimensions=dimensions,
                period=300,
                evaluation_periods=1,
                threshold=threshold,
                comparison_operator="GreaterThanOrEqualToThreshold",
                treat_missing_data="notBreaching",
                alarm_actions=actions,
                ok_actions=actions,
                tags=self._tags,
                opts=pulumi.ResourceOptions(parent=self),
            )


LIVE_ALIAS = "live"
"""The alias clients and the function URL use; each release points it at the new function version."""


def alias_description(version: str) -> str:
    """The alias's description names the model version it serves (what `modelops smoke` verifies)."""
    return f"model version {version}"


def execution_policy(partition: str, region: str, account_id: str, model: ModelConfig, log_group_name: str) -> dict:
    """Logs to its own group, read its own model prefix: every statement names its resource."""
    log_group_arn = f"arn:{partition}:logs:{region}:{account_id}:log-group:{log_group_name}"
    statements = [
        {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": f"{log_group_arn}:*"}
    ]
    if model.artifact_bucket:
        statements += artifact_read_policy(partition, model.artifact_bucket, model.artifact_prefix)["Statement"]
    return {"Version": "2012-10-17", "Statement": statements}


def xray_write_policy_arn(partition: str) -> str:
    """The AWS managed policy that lets the function send its traces (active tracing)."""
    return f"arn:{partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
