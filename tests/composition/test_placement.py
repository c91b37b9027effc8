"""Where each fallback mode puts a model, and what `auto` does with each pre-flight outcome."""

from __future__ import annotations

import pytest

from components.config import parse_stack_config
from composition.placement import place
from composition.preflight import PoolCheck, PreflightReport
from tests.conftest import stack_raw


@pytest.fixture
def prod():
    return parse_stack_config(stack_raw("prod"))


@pytest.mark.parametrize("model, kubernetes, serverless", [("chat", True, False), ("sentiment", True, True)])
def test_fixed_modes(prod, model, kubernetes, serverless):
    placement = place(prod, model, prod.models[model], None)
    assert (placement.kubernetes, placement.serverless) == (kubernetes, serverless)


def test_only_mode_is_serverless_only():
    dev = parse_stack_config(stack_raw("dev"))
    placement = place(dev, "sentiment", dev.models["sentiment"], None)
    assert (placement.kubernetes, placement.serverless) == (False, True)


def test_auto_follows_the_recorded_placement_and_preflight_only_advises(prod):
    passing = PreflightReport("us-east-1", {"l4": PoolCheck("l4", "pass")})
    placement = place(prod, "summarizer", prod.models["summarizer"], passing)
    assert (placement.kubernetes, placement.serverless, placement.advice) == (True, False, None)


def test_a_failing_preflight_never_moves_a_running_gpu_model(prod):
    # A live quota check used to flip the model to Lambda, deleting its Deployment, Service and route in
    # whatever update ran next. Now it says which reviewed change would move it, and moves nothing.
    report = PreflightReport(
        "us-east-1", {"l4": PoolCheck("l4", "fail", ("pool l4: quota L-DB2E81BA allows 8 vCPUs",))}
    )
    placement = place(prod, "summarizer", prod.models["summarizer"], report)
    assert (placement.kubernetes, placement.serverless) == (True, False)
    assert "quota L-DB2E81BA allows 8 vCPUs" in str(placement.advice)
    assert "set modelops:models.summarizer.placement: serverless" in str(placement.advice)


def test_a_serverless_placement_is_kept_and_a_passing_preflight_suggests_the_way_back():
    raw = stack_raw("prod")
    raw["models"]["summarizer"]["placement"] = "serverless"
    cfg = parse_stack_config(raw)
    report = PreflightReport("us-east-1", {"l4": PoolCheck("l4", "pass")})
    placement = place(cfg, "summarizer", cfg.models["summarizer"], report)
    assert (placement.kubernetes, placement.serverless) == (False, True)
    assert "set modelops:models.summarizer.placement: gpu" in str(placement.advice)


def test_auto_keeps_the_recorded_pool_when_preflight_cannot_run(prod):
    report = PreflightReport("us-east-1", skipped="pre-flight could not run: no AWS credentials")
    placement = place(prod, "summarizer", prod.models["summarizer"], report)
    assert (placement.kubernetes, placement.serverless, placement.advice) == (True, False, None)
    assert placement.reason == (
        "auto: GPU pool l4, as modelops:models.summarizer.placement records (pre-flight "
        "could not run: no AWS credentials)"
    )
