"""What every module of the stack schema shares: the config namespace, the strict model base, the secret
markers and the key paths errors are written with."""

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

NAMESPACE = "modelops"
"""The config namespace: every key of this project is `modelops:<key>`."""

KUBECONFIG_SECRET_KEY = "kubeconfig"
"""The secret config key holding the kubeconfig when the cluster is not read from its own stack."""
SECRET_SET = object()
"""Stands for a secret config value in `parse_stack_config`'s input: its presence matters, never its text."""

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$"


class ConfigModel(BaseModel):
    # field docstrings become the JSON schema's descriptions (editors show them on hover)
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True, use_attribute_docstrings=True
    )


def key_path(loc: tuple[Any, ...]) -> str:
    """A location under the namespace as a stack file spells it: `modelops:models.chat.env[0]`."""
    head, *rest = loc
    return f"{NAMESPACE}:{head}" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in rest)
