"""Pre-flight: can this AWS account get the GPUs a stack's pools ask for, before `pulumi up` tries?

For each GPU pool: are its instance types offered in the cluster's region and zones
(`ec2:DescribeInstanceTypeOfferings`), and does the account's vCPU quota for the family and capacity
type (`servicequotas:GetServiceQuota`) cover the pool's GPU limit on its roomiest instance? Pools
that share a quota are also checked together. Throttling and 5xx answers are retried (botocore's
standard mode, bounded attempts and timeouts); what still fails is reported plainly, never raised.
The report also drives the serverless fallback's `auto` mode.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from components.config import ModelConfig, StackConfig
from components.gpu_catalogue import GpuInstanceType, load_catalogue

if TYPE_CHECKING:
    import boto3

Status = Literal["pass", "fail", "unknown"]

MAX_ATTEMPTS = 4
CONNECT_TIMEOUT_SECONDS = 3
READ_TIMEOUT_SECONDS = 10
CATALOGUE_ARCHITECTURE = "amd64"
"""Every type in the GPU catalogue (g5, g6, g6e, p4d, p5) is x86_64 (EC2 instance type specifications): a pool
that asks Karpenter for arm64 (`kubernetes.io/arch`) can launch none of them."""
PREFLIGHT_SWITCH = "MODELOPS_PREFLIGHT"
"""`off` keeps pre-flight from calling AWS (the offline engine sets it unless asked otherwise)."""

_ACCESS_DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "AuthFailure",
}
_PERMISSIONS = {
    "DescribeInstanceTypeOfferings": "ec2:DescribeInstanceTypeOfferings",
    "GetServiceQuota": "servicequotas:GetServiceQuota",
    "GetAWSDefaultServiceQuota": "servicequotas:GetAWSDefaultServiceQuota",
    "GetAccountSettings": "lambda:GetAccountSettings",
    "GetFunctionConcurrency": "lambda:GetFunctionConcurrency",
}


@dataclass(frozen=True)
class PoolCheck:
    pool: str
    status: Status
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    capacities: tuple[str, ...] = ()
    """The capacity types whose quota covers the pool on its own."""


@dataclass(frozen=True)
class PreflightReport:
    region: str
    pools: dict[str, PoolCheck] = field(default_factory=dict)
    skipped: str | None = None
    """Why pre-flight did not run at all, if it did not."""

    def status(self, pool: str) -> Status:
        check = self.pools.get(pool)
        return check.status if check else "unknown"

    def reason(self, pool: str) -> str:
        if self.skipped:
            return self.skipped
        check = self.pools.get(pool)
        if check is None:
            return f"pool {pool} was not checked"
        return "; ".join(check.problems or check.notes) or f"pool {pool} passed"

    @property
    def ok(self) -> bool:
        return self.skipped is None and all(c.status == "pass" for c in self.pools.values())


class _CheckFailed(Exception):
    """An AWS call that failed for good: the message is what the user reads."""


def enabled() -> bool:
    return os.environ.get(PREFLIGHT_SWITCH, "on").lower() not in ("off", "0", "false", "no")


def run_preflight(
    cfg: StackConfig, session: boto3.session.Session | None = None, pools: list[str] | None = None
) -> PreflightReport:
    """Check the stack's pools (or the named ones) against the account. Never raises for AWS errors."""
    region = cfg.cluster.region
    names = [p for p in (pools or list(cfg.gpu_pools)) if p in cfg.gpu_pools]
    if not names:
        return PreflightReport(region)
    # boto3 costs half a second to import: only pay for it when pre-flight really runs.
    import boto3

    session = session or boto3.session.Session()
    if session.get_credentials() is None:
        return PreflightReport(region, skipped="pre-flight could not run: no AWS credentials")
    client_config = _client_config()
    ec2 = session.client("ec2", region_name=region, config=client_config)
    quotas = session.client("service-quotas", region_name=region, config=client_config)
    catalogue = load_catalogue()

    pool_types = {
        name: catalogue.types_for(cfg.gpu_pools[name].instance_families, cfg.gpu_pools[name].instance_types)
        for name in names
    }
    try:
        offered = _offerings(ec2, sorted({t.name for types in pool_types.values() for t in types}))
    except _CheckFailed as exc:
        return PreflightReport(region, {n: PoolCheck(n, "unknown", (f"pool {n}: {exc}",)) for n in names})

    quota_cache: dict[str, float | _CheckFailed] = {}
    sizes = {name: _pool_sizing(cfg, name, pool_types[name], offered) for name in names}
    checks = {name: _check_pool(name, cfg, sizes[name], quotas, quota_cache) for name in names}
    return PreflightReport(region, _shared_quota_pass(checks, sizes, quota_cache))


@dataclass(frozen=True)
class _Sizing:
    """What a pool can launch and the vCPUs its GPUs take: at its GPU limit (the ceiling) and at the least
    its models' minimum replicas need (the floor)."""

    ceiling_type: GpuInstanceType | None
    ceiling_vcpus: int
    floor_vcpus: int
    notes: tuple[str, ...]


def _pool_models(cfg: StackConfig, pool_name: str) -> list[ModelConfig]:
    return [m for m in cfg.models.values() if m.pool == pool_name and m.gpus and cfg.fallback(m) != "only"]


def _launchable(
    cfg: StackConfig,
    types: list[GpuInstanceType],
    offered: dict[str, set[str]],
    models: list[ModelConfig],
    pool_architecture: str,
) -> tuple[list[GpuInstanceType], list[str]]:
    """The pool's types Karpenter can really launch for its models: offered in the cluster's zones, and able to
    hold a replica of one of them (GPUs per replica, CPU and memory: the schema's own fit)."""
    zones = set(cfg.cluster.availability_zones)
    catalogue = load_catalogue()
    launchable, notes = [], []
    for t in types:
        where = offered.get(t.name, set())
        if str(pool_architecture) != CATALOGUE_ARCHITECTURE:
            notes.append(f"{t.name} is {CATALOGUE_ARCHITECTURE}, the pool asks for {pool_architecture}")
        elif not (where & zones if zones else where):
            place = f"zones {', '.join(sorted(zones))}" if zones else cfg.cluster.region
            notes.append(f"{t.name} is not offered in {place}")
        elif models and not any(catalogue.fits(t, m.gpus or 0, m.resources.cpu, m.resources.memory) for m in models):
            notes.append(
                f"{t.name} holds no replica of the pool's models (GPUs, CPU or memory): Karpenter never picks it"
            )
        else:
            launchable.append(t)
    return launchable, notes


def _pool_sizing(cfg: StackConfig, name: str, types: list[GpuInstanceType], offered: dict[str, set[str]]) -> _Sizing:
    """Karpenter may pick the roomiest launchable type (the quota counts vCPUs): the ceiling is the pool's GPU
    limit on it. The floor is the models' minimum replicas, each on the smallest type that holds it (a lower
    bound: canary replicas come on top)."""
    pool = cfg.gpu_pools[name]
    catalogue = load_catalogue()
    models = _pool_models(cfg, name)
    launchable, notes = _launchable(cfg, types, offered, models, pool.architecture)
    if not launchable:
        return _Sizing(None, 0, 0, tuple(notes))
    worst = max(launchable, key=lambda t: math.ceil(pool.gpu_limit / t.gpus) * t.vcpus)
    ceiling = math.ceil(pool.gpu_limit / worst.gpus) * worst.vcpus
    floor = 0
    for model in models:
        gpus = model.gpus or 0
        fitting = [t for t in launchable if catalogue.fits(t, gpus, model.resources.cpu, model.resources.memory)]
        if fitting:
            smallest = min(fitting, key=lambda t: t.vcpus)
            floor += math.ceil(cfg.min_replicas(model) / max(1, smallest.gpus // max(gpus, 1))) * smallest.vcpus
    return _Sizing(worst, ceiling, min(floor, ceiling), tuple(notes))


def _check_pool(
    name: str, cfg: StackConfig, sizing: _Sizing, quotas, quota_cache: dict[str, float | _CheckFailed]
) -> PoolCheck:
    pool = cfg.gpu_pools[name]
    catalogue = load_catalogue()
    worst = sizing.ceiling_type
    if worst is None:
        types = catalogue.types_for(pool.instance_families, pool.instance_types)
        return PoolCheck(
            name,
            "fail",
            (f"pool {name}: none of {', '.join(t.name for t in types)} can be launched: {'; '.join(sizing.notes)}",),
        )
    problems: list[str] = []
    notes = list(sizing.notes)
    unknown, covered = [], []
    for capacity in cfg.capacity_types(pool):
        quota = catalogue.vcpu_quotas[(worst.quota_class, capacity)]
        value = quota_cache.get(quota.code)
        if value is None:
            try:
                value = _quota_value(quotas, quota.code)
            except _CheckFailed as exc:
                value = exc
            quota_cache[quota.code] = value
        if isinstance(value, _CheckFailed):
            unknown.append(f"pool {name}: {value}")
        elif value >= sizing.ceiling_vcpus:
            covered.append(str(capacity))
            notes.append(
                f"quota {quota.code} ({quota.name}) allows {value:g} vCPUs; the pool needs {sizing.ceiling_vcpus}"
            )
        elif value >= sizing.floor_vcpus and sizing.floor_vcpus > 0:
            # Below the ceiling, above what the minimum replicas need: a warning, never a failure.
            covered.append(str(capacity))
            notes.append(
                f"warning: quota {quota.code} allows {value:g} vCPUs, less than the {sizing.ceiling_vcpus} the pool's "
                f"limit of {pool.gpu_limit} GPUs on {worst.name} needs, but enough for its models' minimum replicas "
                f"({sizing.floor_vcpus}): the pool cannot grow to its limit"
            )
        else:
            problems.append(
                f"pool {name}: quota {quota.code} allows {value:g} vCPUs, the pool's limit of "
                f"{pool.gpu_limit} GPUs on {worst.name} needs {sizing.ceiling_vcpus}"
            )
    if covered:
        # One covered capacity type is enough: Karpenter falls back to it (spot -> on-demand).
        return PoolCheck(name, "pass", (), tuple(notes + problems + unknown), tuple(covered))
    if unknown and not problems:
        return PoolCheck(name, "unknown", tuple(unknown), tuple(notes))
    return PoolCheck(name, "fail", tuple(problems + unknown), tuple(notes))


def _shared_quota_pass(
    checks: dict[str, PoolCheck], sizes: dict[str, _Sizing], quota_cache: dict[str, float | _CheckFailed]
) -> dict[str, PoolCheck]:
    """Pools that share a quota, checked together. Each passing pool counts against the first quota, spot
    before on-demand, that covers it alone and still holds its minimum replicas beside the pools already
    counted (Karpenter prefers spot when a pool allows both: https://karpenter.sh/docs/concepts/nodepools/,
    capacity type): a pool its spot quota covers does not count against on-demand. A pool fails here only
    when no quota it may use holds its minimum beside the others; pools that cannot all reach their
    limits together get a warning."""
    catalogue = load_catalogue()
    used: dict[str, int] = defaultdict(int)
    counted: dict[str, str] = {}
    for name, check in checks.items():
        sizing = sizes[name]
        if check.status != "pass" or sizing.ceiling_type is None:
            continue
        quota_class = sizing.ceiling_type.quota_class
        codes = [
            catalogue.vcpu_quotas[(quota_class, c)].code
            for c in sorted(check.capacities, key=lambda c: 0 if c == "spot" else 1)
        ]
        room = [c for c in codes if used[c] + sizing.floor_vcpus <= _limit(quota_cache, c)]
        if room:
            counted[name] = room[0]
            used[room[0]] += sizing.floor_vcpus
            continue
        sharing = " + ".join(sorted({*[n for n, c in counted.items() if c in codes], name}))
        checks[name] = PoolCheck(
            name,
            "fail",
            (
                f"pools {sharing} together need more than quota {codes[0]} allows ({_limit(quota_cache, codes[0]):g} "
                f"vCPUs) for their minimum replicas: {used[codes[0]]} for the others, {sizing.floor_vcpus} for {name}",
            ),
            check.notes,
        )
    for code in set(counted.values()):
        pools = sorted(n for n, c in counted.items() if c == code)
        total = sum(sizes[n].ceiling_vcpus for n in pools)
        if len(pools) > 1 and total > _limit(quota_cache, code):
            warning = (
                f"warning: pools {' + '.join(pools)} together need {total} vCPUs of quota {code} at their limits, "
                f"which allows {_limit(quota_cache, code):g}: they cannot all grow to their limits at once"
            )
            for n in pools:
                checks[n] = PoolCheck(n, "pass", (), (*checks[n].notes, warning), checks[n].capacities)
    return checks


def _limit(quota_cache: dict[str, float | _CheckFailed], code: str) -> float:
    value = quota_cache.get(code)
    return value if isinstance(value, float) else 0.0


def _client_config():
    """Bounded retries (botocore's standard mode retries throttling and 5xx) and timeouts, for every client."""
    import botocore.config

    return botocore.config.Config(
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
    )


def _call(client, operation: str, **kwargs):
    from botocore import xform_name
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return getattr(client, xform_name(operation))(**kwargs)
    except NoCredentialsError as exc:
        raise _CheckFailed("no AWS credentials") from exc
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in _ACCESS_DENIED:
            raise _CheckFailed(f"{code}: the credentials lack {_PERMISSIONS.get(operation, operation)}") from exc
        attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
        message = exc.response.get("Error", {}).get("Message", "")
        raise _CheckFailed(f"{operation} failed after {attempts} attempt(s): {code} {message}".rstrip()) from exc
    except BotoCoreError as exc:
        raise _CheckFailed(f"{operation} failed after {MAX_ATTEMPTS} attempt(s): {exc}") from exc


def _offerings(ec2, type_names: list[str]) -> dict[str, set[str]]:
    offered: dict[str, set[str]] = defaultdict(set)
    token = None
    while True:
        kwargs = {"LocationType": "availability-zone", "Filters": [{"Name": "instance-type", "Values": type_names}]}
        if token:
            kwargs["NextToken"] = token
        page = _call(ec2, "DescribeInstanceTypeOfferings", **kwargs)
        for offering in page.get("InstanceTypeOfferings", []):
            offered[offering["InstanceType"]].add(offering["Location"])
        token = page.get("NextToken")
        if not token:
            return offered


def _quota_value(quotas, code: str) -> float:
    from botocore.exceptions import ClientError

    try:
        answer = _call(quotas, "GetServiceQuota", ServiceCode="ec2", QuotaCode=code)
    except _CheckFailed as exc:
        cause = exc.__cause__
        if not (
            isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") == "NoSuchResourceException"
        ):
            raise
        # Accounts that never changed a quota may only have the AWS default.
        answer = _call(quotas, "GetAWSDefaultServiceQuota", ServiceCode="ec2", QuotaCode=code)
    return float(answer["Quota"]["Value"])


def format_report(report: PreflightReport) -> str:
    if report.skipped:
        return report.skipped
    lines = []
    for name, check in report.pools.items():
        lines.append(f"{check.status.upper():7} pool {name}")
        lines += [f"  - {p}" for p in check.problems]
        lines += [f"    {n}" for n in check.notes]
    return "\n".join(lines) or "no GPU pools to check"
