"""Where each fallback mode puts a model, and what `auto` does with each pre-flight outcome."""

from __future__ import annotations

import pytest

from components.config import parse_stack_config
from components.placement import place
from components.preflight import PoolCheck, PreflightReport
from tests.conftest import stack_raw


@pytest.fixture
def prod():
    return parse_stack_config(stack_raw("prod"))


@pytest.mark.parametrize("model, kubernetes, serverless", [
    ("chat", True, False), ("sentiment", True, True)])
def test_fixed_modes(prod, model, kubernetes, serverless):
    placement = place(prod, model, prod.models[model], None)
    assert (placement.kubernetes, placement.serverless) == (kubernetes, serverless)


def test_only_mode_is_serverless_only():
    dev = parse_stack_config(stack_raw("dev"))
    placement = place(dev, "sentiment", dev.models["sentiment"], None)
    assert (placement.kubernetes, placement.serverless) == (False, True)


def test_auto_follows_a_passing_preflight(prod):
    report = PreflightReport("us-east-1", {"l4": PoolCheck("l4", "pass")})
    placement = place(prod, "summarizer", prod.models["summarizer"], report)
    assert (placement.kubernetes, placement.serverless) == (True, False)


def test_auto_falls_back_when_preflight_fails_and_says_why(prod):
    report = PreflightReport("us-east-1", {"l4": PoolCheck("l4", "fail", ("pool l4: quota L-DB2E81BA allows 8 vCPUs",))})
    placement = place(prod, "summarizer", prod.models["summarizer"], report)
    assert (placement.kubernetes, placement.serverless) == (False, True)
    assert "quota L-DB2E81BA allows 8 vCPUs" in placement.reason


def test_auto_keeps_the_configured_pool_when_preflight_cannot_run(prod):
    report = PreflightReport("us-east-1", skipped="pre-flight could not run: no AWS credentials")
    placement = place(prod, "summarizer", prod.models["summarizer"], report)
    assert (placement.kubernetes, placement.serverless) == (True, False)
    assert placement.reason == ("auto: GPU pool l4 kept as configured; pre-flight could not run: no AWS credentials")
