"""Shared fixtures: stack configs as plain dicts, and plans of the reference stacks (computed once)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# Upstream files the tests check against, vendored with their provenance (tests/upstream/README.md): the
# repository tests itself with nothing beside it.
UPSTREAM = ROOT / "tests" / "upstream"
CLI_FIXTURES = UPSTREAM / "fixtures" / "pulumi-cli"
CRDS = UPSTREAM / "crds"


def stack_raw(stack: str) -> dict[str, Any]:
    """A reference stack's `modelops:` config, keys without the namespace."""
    data = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {k.split(":", 1)[1]: copy.deepcopy(v) for k, v in data.items() if k.startswith("modelops:")}


_PLANS: dict[str, dict] = {}


def reference_plan(stack: str) -> dict[str, Any]:
    """The offline plan of a reference stack, computed once per test session."""
    if stack not in _PLANS:
        from modelops_cli.offline.engine import run_program
        from modelops_cli.stackfile import load_stack

        _PLANS[stack] = run_program(load_stack(stack))
    return copy.deepcopy(_PLANS[stack])


@pytest.fixture
def prod_plan() -> dict[str, Any]:
    return reference_plan("prod")


@pytest.fixture
def dev_plan() -> dict[str, Any]:
    return reference_plan("dev")


@pytest.fixture
def staging_plan() -> dict[str, Any]:
    return reference_plan("staging")


def steps_of(plan: dict[str, Any], type_suffix: str) -> list[dict[str, Any]]:
    return [s for s in plan["steps"] if s["newState"]["type"].endswith(type_suffix)]


def step_named(plan: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [s for s in plan["steps"] if s["urn"].rsplit("::", 1)[-1] == name]
    assert len(matches) == 1, f"{name}: {len(matches)} steps"
    return matches[0]


@pytest.fixture(scope="session")
def moto_server():
    from tests.aws_fakes import MotoServer

    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mlflow_server():
    """A real MLflow tracking server (SQLite, artifacts on its own moto S3), shared by the registry tests."""
    from tests.mlflow_registry import MlflowServer

    server = MlflowServer()
    yield server
    server.stop()


@pytest.fixture
def fake_aws(moto_server, monkeypatch):
    """A moto-backed AWS endpoint with Service Quotas and fault injection; boto3 pointed at it."""
    from tests.aws_fakes import FaultyAws, aws_env

    moto_server.reset()
    fake = FaultyAws(moto_server)
    aws_env(monkeypatch, fake.url)
    yield fake
    fake.stop()
