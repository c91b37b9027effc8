"""Components in isolation: build one under the mock engine and read back what it registered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from modelops_cli.offline.engine import plan_of


class Built:
    def __init__(self, plan: dict[str, Any]):
        self.plan = plan
        self.steps = plan["steps"]

    def named(self, name: str) -> dict[str, Any]:
        matches = [s["newState"] for s in self.steps if s["urn"].rsplit("::", 1)[-1] == name]
        assert len(matches) == 1, f"{name}: {len(matches)} resources; have {self.names()}"
        return matches[0]

    def inputs(self, name: str) -> dict[str, Any]:
        return self.named(name)["inputs"]

    def names(self) -> list[str]:
        return [s["urn"].rsplit("::", 1)[-1] for s in self.steps]

    def of_type(self, suffix: str) -> list[dict[str, Any]]:
        return [s["newState"] for s in self.steps if s["newState"]["type"].endswith(suffix)]

    @property
    def warnings(self) -> list[str]:
        return [d["message"] for d in self.plan.get("diagnostics", []) if d["severity"] == "warning"]


@pytest.fixture
def build() -> Callable[[Callable[[], None]], Built]:
    return lambda program: Built(plan_of(program))


def cluster_config(**changes: Any):
    """A cluster as the stack schema validates it (prod-like), with `changes` (snake_case keys)."""
    from components.config import ClusterConfig

    return ClusterConfig.model_validate(
        {
            "name": "ml-prod",
            "region": "us-east-1",
            "account_id": "123456789012",
            "kubernetes_version": "1.33",
            "node_role": "NodeRole",
            "oidc_provider_arn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC",
            **changes,
        }
    )


def model_config(**fields: Any):
    """A model as the stack schema validates it: `fields` in the stack file's shape (snake_case keys)."""
    from components.config import ModelConfig

    return ModelConfig.model_validate({"version": "1.0.0", "image": {"context": "models/sentiment"}, **fields})
