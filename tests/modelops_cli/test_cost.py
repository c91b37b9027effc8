"""`modelops cost`: figures checked against hand computation."""

from __future__ import annotations

import json

import pytest

from modelops_cli.cli import main
from modelops_cli.cost import estimate
from modelops_cli.plan import from_json
from tests.conftest import CLI_FIXTURES, reference_plan


@pytest.fixture(scope="module")
def prod_cost():
    return estimate(from_json(reference_plan("prod")), "us-east-1", 25000)


def test_pool_ceilings_by_hand(prod_cost):
    pools = {p.pool: p for p in prod_cost.pools}
    # a10g: g5.xlarge $1.006, g5.2xlarge $1.212, g5.12xlarge $5.672/4 GPUs = $1.418 per GPU-hour (the priciest)
    assert pools["a10g"].usd_per_gpu_hour == pytest.approx(1.418)
    assert pools["a10g"].ceiling_usd == pytest.approx(16 * 1.418 * 730)
    # l4: g6.xlarge $0.8048, g6.2xlarge $0.9776 per GPU-hour
    assert pools["l4"].ceiling_usd == pytest.approx(8 * 0.9776 * 730)
    assert prod_cost.ceiling_usd == pytest.approx(16 * 1.418 * 730 + 8 * 0.9776 * 730)
    assert prod_cost.within_budget is True


def test_expected_cost_at_min_replicas_by_hand(prod_cost):
    expected = {w.name: w.expected_usd for w in prod_cost.workloads}
    # the cheapest per-GPU instance holding one replica: vision (3 CPU, 12Gi) fits g5.xlarge $1.006;
    # chat (6 CPU, 24Gi) does not fit a g5.xlarge's 4 vCPU / 16 GiB, so g5.2xlarge $1.212; g6.xlarge $0.8048
    assert expected["chat"] == pytest.approx(3 * 1.212 * 730)
    assert expected["vision"] == pytest.approx(2 * 1.006 * 730)
    assert expected["summarizer"] == pytest.approx(2 * 0.8048 * 730)
    assert expected["chat-canary"] == pytest.approx(2 * 1.212 * 730)  # two through a gateway: drain-safe


def test_serverless_cap_by_hand(prod_cost):
    [fallback] = prod_cost.fallbacks
    assert (fallback.reserved_concurrency, fallback.memory_mb) == (5, 4096)
    assert fallback.cap_usd == pytest.approx(5 * 4 * 0.0000166667 * 730 * 3600)


def test_over_budget_verdict(capsys):
    assert main(["cost", "--stack", "prod", "--budget", "20000"]) == 0
    assert "OVER the budget of $20,000" in capsys.readouterr().out


def test_json_output_and_plans_without_gpus(capsys):
    assert main(["cost", "--plan", str(CLI_FIXTURES / "sample-preview-creates.json"), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ceilingUsd"] == 0 and report["pools"] == []
    assert report["fallbacks"][0]["reserved_concurrency"] is None  # the real CLI's function has no cap
