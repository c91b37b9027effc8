"""`modelops cost`: what a plan can spend on GPUs and fallbacks per month, against the budget.

- Ceiling: each GPU NodePool's GPU limit x the hourly price per GPU of its priciest allowed instance
  x 730 (the same computation as the `gpu-cost-ceiling` rule: one implementation, in the policy pack).
- Expected at min replicas: each GPU workload's minimum replicas x GPUs per pod x the cheapest
  per-GPU price among its pool's instances that hold a pod: its GPUs, and its CPU and memory requests
  beside what the node keeps for itself.
- Serverless cap: reserved concurrency x memory (GB) x the Lambda GB-second price x a month of seconds,
  what the fallback would cost if it ran flat out all month.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from modelops_rules import framework, gpu, k8s_stack, values
from modelops_rules.framework import StackResource

from components.gpu_catalogue import Catalogue, cpu_cores, load_catalogue, memory_gib

from .common import UsageError
from .inert import terminal
from .plan import Plan

SECONDS_PER_MONTH = 730 * 3600


@dataclass(frozen=True)
class PoolCost:
    pool: str
    gpu_limit: int | None
    usd_per_gpu_hour: float | None
    ceiling_usd: float | None
    problem: str | None = None


@dataclass(frozen=True)
class WorkloadCost:
    name: str
    pool: str
    min_replicas: int
    gpus_per_pod: int
    expected_usd: float | None


@dataclass(frozen=True)
class FallbackCost:
    function: str
    reserved_concurrency: int | None
    memory_mb: int
    cap_usd: float | None


@dataclass
class CostReport:
    region: str
    budget_usd: float | None
    pools: list[PoolCost] = field(default_factory=list)
    workloads: list[WorkloadCost] = field(default_factory=list)
    fallbacks: list[FallbackCost] = field(default_factory=list)

    @property
    def ceiling_usd(self) -> float:
        return sum(p.ceiling_usd or 0 for p in self.pools)

    @property
    def expected_usd(self) -> float:
        return sum(w.expected_usd or 0 for w in self.workloads)

    @property
    def fallback_cap_usd(self) -> float:
        return sum(f.cap_usd or 0 for f in self.fallbacks)

    @property
    def within_budget(self) -> bool | None:
        if self.budget_usd is None:
            return None
        return self.ceiling_usd <= self.budget_usd and not any(p.problem for p in self.pools)


def _requests(spec: dict[str, Any]) -> tuple[str, str]:
    """A pod's summed CPU and memory requests, as quantities (init containers run before, not beside)."""
    cpu = memory = 0.0
    for container in spec.get("containers") or []:
        requests = (container.get("resources") or {}).get("requests") or {}
        cpu += cpu_cores(str(requests.get("cpu", "0")))
        memory += memory_gib(str(requests.get("memory", "0")))
    return f"{cpu}", f"{memory}Gi"


def estimate(plan: Plan, region: str, budget_usd: float | None) -> CostReport:
    """The plan priced; a value it cannot read as a number (NaN, a list, `2k` where a count goes) is a
    malformed plan: exit 2 naming it, never a traceback."""
    try:
        return _estimate(plan, region, budget_usd)
    except (ValueError, TypeError, OverflowError, ArithmeticError, AttributeError, KeyError) as exc:
        raise UsageError(f"{terminal(plan.source)}: malformed plan: cannot price it: {terminal(exc, 200)}") from None


def _estimate(plan: Plan, region: str, budget_usd: float | None) -> CostReport:
    """The same pool, workload and price reading as the `gpu-cost-ceiling` rule: the pack's own helpers."""
    resources = [StackResource(r.type, r.name, r.urn, r.inputs) for r in plan.resources()]
    pools = gpu.gpu_pools(resources)
    report = CostReport(region, budget_usd)
    report.pools = [_pool_cost(pool, region) for pool in pools]
    report.workloads = _workload_costs(resources, pools, region, load_catalogue())
    report.fallbacks = [_fallback_cost(r) for r in resources if r.type == "aws:lambda/function:Function"]
    return report


def _pool_cost(pool: StackResource, region: str) -> PoolCost:
    limit = gpu.pool_gpu_limit(pool.props)
    ceiling, problem = gpu.monthly_ceiling(pool.props, region)
    per_gpu = ceiling / (limit * gpu.catalogue()["hoursPerMonth"]) if limit and not problem else None
    return PoolCost(framework.object_name(pool.props, pool.name), limit, per_gpu, None if problem else ceiling, problem)


def _workload_costs(
    resources: list[StackResource], pools: list[StackResource], region: str, catalogue: Catalogue
) -> list[WorkloadCost]:
    """Each GPU Deployment or StatefulSet at its minimum replicas, on the cheapest of its pool's instance types
    that holds one of its pods."""
    data = gpu.catalogue()
    prices = data["onDemandUsdPerHour"].get(region, {})
    costs = []
    for r in resources:
        if values.k8s_kind(r.type) not in ("Deployment", "StatefulSet"):
            continue
        spec = framework.pod_spec(r.type, r.props) or {}
        per_pod = sum(framework.gpu_count(c) for c in framework.containers(spec, include_init=False))
        pool = gpu.workload_pool(r.props, r.type, pools)
        if not per_pod or pool is None:
            continue
        low, _ = k8s_stack.replicas_range(r, resources)
        requests = _requests(spec)
        fitting = [
            t
            for t in gpu.pool_instance_types(pool.props)
            if t in prices and catalogue.fits(catalogue.instance_types[t], per_pod, *requests)
        ]
        cheapest = min((prices[t] / data["instanceTypes"][t]["gpus"] for t in fitting), default=None)
        expected = low * per_pod * cheapest * data["hoursPerMonth"] if cheapest is not None else None
        name, pool_name = framework.object_name(r.props, r.name), framework.object_name(pool.props, pool.name)
        costs.append(WorkloadCost(name, pool_name, low, per_pod, expected))
    return costs


def _fallback_cost(function: StackResource) -> FallbackCost:
    """What the function would cost running flat out all month at its reserved concurrency (none: no cap)."""
    lambda_price = gpu.catalogue()["lambdaUsdPerGbSecond"]
    concurrency = function.props.get("reservedConcurrentExecutions")
    concurrency = None if concurrency in (None, -1) else int(concurrency)
    memory = int(function.props.get("memorySize") or 128)
    arch = (function.props.get("architectures") or ["x86_64"])[0]
    cap = (
        concurrency * memory / 1024 * lambda_price.get(arch, lambda_price["x86_64"]) * SECONDS_PER_MONTH
        if concurrency is not None
        else None
    )
    return FallbackCost(str(function.props.get("name") or function.name), concurrency, memory, cap)


def usd(value: float | None) -> str:
    return "unbounded" if value is None else f"${value:,.0f}"


def verdict(report: CostReport) -> str:
    if report.budget_usd is None:
        return "no budget to compare with"
    if report.within_budget:
        return f"within the budget of {usd(report.budget_usd)}"
    return f"OVER the budget of {usd(report.budget_usd)}"


def format_text(report: CostReport) -> str:
    """For a terminal: pool, model and function names and the region come from a plan (`--plan`) or the
    command line, so each goes through `inert.terminal`."""
    t = terminal
    lines = [
        f"GPU ceiling {usd(report.ceiling_usd)}/month ({verdict(report)}); expected at min replicas "
        f"{usd(report.expected_usd)}/month; serverless cap {usd(report.fallback_cap_usd)}/month "
        f"(region {t(report.region)})"
    ]
    for p in report.pools:
        if p.problem:
            lines.append(f"  pool {t(p.pool)}: cannot price ({t(p.problem)})")
        else:
            lines.append(
                f"  pool {t(p.pool)}: {p.gpu_limit} GPUs x ${p.usd_per_gpu_hour:.4f}/GPU-hour x 730 = "
                f"{usd(p.ceiling_usd)}"
            )
    for w in report.workloads:
        lines.append(
            f"  model {t(w.name)} on {t(w.pool)}: {w.min_replicas} x {w.gpus_per_pod} GPU = {usd(w.expected_usd)}"
        )
    for f in report.fallbacks:
        if f.reserved_concurrency is None:
            lines.append(f"  fallback {t(f.function)}: no reserved concurrency, so no cap")
        else:
            lines.append(f"  fallback {t(f.function)}: {f.reserved_concurrency} x {f.memory_mb} MB = {usd(f.cap_usd)}")
    return "\n".join(lines) + "\n"


def to_json(report: CostReport) -> dict[str, Any]:
    return {
        "region": report.region,
        "budgetUsd": report.budget_usd,
        "ceilingUsd": round(report.ceiling_usd, 2),
        "expectedUsd": round(report.expected_usd, 2),
        "fallbackCapUsd": round(report.fallback_cap_usd, 2),
        "withinBudget": report.within_budget,
        "pools": [p.__dict__ for p in report.pools],
        "workloads": [w.__dict__ for w in report.workloads],
        "fallbacks": [f.__dict__ for f in report.fallbacks],
    }


def format_json(report: CostReport) -> str:
    return json.dumps(to_json(report), indent=2) + "\n"
