"""A model's serverless fallback: the Lambda function's settings, its name and what Lambda reserves."""

import re
from typing import Any

from pydantic import Field

from .base import ConfigModel

LAMBDA_RESERVED_ENV = (
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
)
"""Keys Lambda reserves (docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html): it refuses a function
that sets one."""
LAMBDA_ENV_BYTES = 4096
"""Lambda's limit on the total size of a function's environment variables (keys and values)."""


class ServerlessConfig(ConfigModel):
    memory_mb: int = Field(default=4096, ge=128, le=10240)
    timeout_seconds: int = Field(default=60, ge=1, le=900)
    ephemeral_storage_mb: int = Field(default=2048, ge=512, le=10240)
    reserved_concurrency: int = Field(default=5, ge=1, le=1000)
    """Hard cap on concurrent invocations: a runaway fallback is a runaway bill."""
    sample_payload: dict[str, Any] = {"inputs": "ping"}
    """What `modelops smoke` sends to the function."""


def lambda_function_name(stack: str, model: str) -> str:
    """A fallback's Lambda name: known without reading state, so `modelops smoke` can find it. Never cut to
    Lambda's 64 characters (two models could then share one name): validation refuses a name too long.

    Function names are per account and region, which stacks may share (the reference stacks do): the name must tell
    every (stack, model) pair apart. `modelops-<stack>-<model>` does while the stack name has no `-` or `_` (a model
    name has neither `_` nor, first, the stack's part); stack `prod-eu` with model `chat` and stack `prod` with model
    `eu-chat` would meet there, so a stack name with `-` or `_` is joined by `_`, which no model name holds:
    `modelops-prod-eu_chat`. Reading back, the model is after the last `_`, or after the first `-` past the prefix."""
    if re.fullmatch(r"[A-Za-z0-9]+", stack):
        return f"modelops-{stack}-{model}"
    return f"modelops-{stack}_{model}"


STACK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
"""What the Pulumi CLI takes as a stack name (sdk/go/common/tokens/stack_name.go, ParseStackName: `^[A-Za-z0-9_.-]*`,
not empty, at most 100 characters)."""
