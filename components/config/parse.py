"""The one entry to the schema: raw `modelops:` values in, a validated StackConfig or every problem out."""

from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from .base import KUBECONFIG_SECRET_KEY, NAMESPACE, key_path
from .checks import stack_problems
from .secret_paths import SecretPath, secret_path_problems, secret_texts, without_secrets
from .stack import StackConfig


class StackConfigError(Exception):
    """A stack config that cannot be deployed: one `path: reason` line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def _message(error: ErrorDetails) -> str:
    msg = error["msg"]
    if error["type"] == "value_error":
        msg = msg.removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        msg = "unknown key"
    if error["type"] == "missing":
        msg = "required"
    return msg


def parse_stack_config(
    raw: dict[str, Any],
    stack: str | None = None,
    secret_paths: list[SecretPath] | None = None,
    secret_keys: frozenset[str] = frozenset(),
) -> StackConfig:
    """Validate config values keyed without namespace (`models`, `gpuPools`, …); with the stack's name,
    also the names derived from it (Lambda function names). `secret_paths` are where the stack file has
    `secure:` values (None: not known), `secret_keys` the keys the engine marks secret.

    Raises StackConfigError listing every problem found, each as `modelops:<path>: <reason>`; a secret is
    refused where it would be written in clear, and no message quotes a secret's text.
    """
    raw = dict(raw)
    secrets = secret_texts(raw, secret_paths, secret_keys)
    misplaced = secret_path_problems(list(secret_paths or []))
    if misplaced:
        raise StackConfigError(without_secrets(misplaced, secrets))
    kubeconfig = raw.pop(KUBECONFIG_SECRET_KEY, None)
    try:
        cfg = StackConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{key_path(e['loc']) if e['loc'] else NAMESPACE}: {_message(e)}" for e in exc.errors()]
        raise StackConfigError(without_secrets(problems, secrets)) from None
    problems = stack_problems(cfg, stack, kubeconfig)
    if problems:
        raise StackConfigError(without_secrets(problems, secrets))
    return cfg
