"""Reading resource properties: the helpers every rule module and the pod discovery share, with no rule machinery,
so that rules/framework.py and rules/pods.py (which framework's pod helpers call) both build on it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, Sequence) and not isinstance(value, str | bytes) else []


def dig(value: Any, *path: str) -> Any:
    for key in path:
        value = as_map(value).get(key)
    return value


def k8s_kind(resource_type: str) -> str | None:
    """`kubernetes:apps/v1:Deployment` -> `Deployment`; None for anything not a Kubernetes object."""
    if not resource_type.startswith("kubernetes:") or resource_type.startswith("kubernetes:helm"):
        return None
    if resource_type.startswith("kubernetes:yaml") or resource_type.endswith("List"):
        return None
    return resource_type.rsplit(":", 1)[-1]
