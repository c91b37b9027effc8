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

from components.config import GpuPoolConfig, StackConfig
from components.gpu_catalogue import GpuInstanceType, load_catalogue

if TYPE_CHECKING:
    import boto3

Status = Literal["pass", "fail", "unknown"]

MAX_ATTEMPTS = 4
CONNECT_TIMEOUT_SECONDS = 3
READ_TIMEOUT_SECONDS = 10
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
}


@dataclass(frozen=True)
class PoolCheck:
    pool: str
    status: Status
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


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
    import botocore.config

    session = session or boto3.session.Session()
    if session.get_credentials() is None:
        return PreflightReport(region, skipped="pre-flight could not run: no AWS credentials")
    client_config = botocore.config.Config(
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
    )
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
    checks: dict[str, PoolCheck] = {}
    # (quota code) -> [(pool, vCPUs needed)] for the account-wide check of pools sharing a quota
    shared: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for name in names:
        pool = cfg.gpu_pools[name]
        checks[name] = _check_pool(name, pool, cfg, pool_types[name], offered, quotas, quota_cache, shared)
    for code, users in shared.items():
        limit = quota_cache.get(code)
        if len(users) < 2 or not isinstance(limit, float):
            continue
        total = sum(need for _, need in users)
        if total > limit:
            names_joined = " + ".join(p for p, _ in users)
            for pool_name, _ in users:
                prev = checks[pool_name]
                checks[pool_name] = PoolCheck(
                    pool_name,
                    "fail",
                    (
                        *prev.problems,
                        f"pools {names_joined} together need {total} vCPUs of quota {code}, which allows {limit:g}",
                    ),
                    prev.notes,
                )
    return PreflightReport(region, checks)


def _check_pool(
    name: str,
    pool: GpuPoolConfig,
    cfg: StackConfig,
    types: list[GpuInstanceType],
    offered: dict[str, set[str]],
    quotas,
    quota_cache: dict,
    shared: dict,
) -> PoolCheck:
    zones = set(cfg.cluster.availability_zones)
    problems: list[str] = []
    notes: list[str] = []
    usable = []
    for t in types:
        where = offered.get(t.name, set())
        in_zones = where & zones if zones else where
        if in_zones:
            usable.append(t)
        elif where:
            notes.append(f"{t.name} is not offered in zones {', '.join(sorted(zones))}")
        else:
            notes.append(f"{t.name} is not offered in {cfg.cluster.region}")
    if not usable:
        place = f"zones {', '.join(sorted(zones))}" if zones else cfg.cluster.region
        return PoolCheck(
            name,
            "fail",
            (f"pool {name}: none of {', '.join(t.name for t in types)} is offered in {place}",),
            tuple(notes),
        )

    catalogue = load_catalogue()
    # The roomiest instance per GPU decides: Karpenter may pick it, and the quota counts vCPUs.
    worst = max(usable, key=lambda t: math.ceil(pool.gpu_limit / t.gpus) * t.vcpus)
    need = math.ceil(pool.gpu_limit / worst.gpus) * worst.vcpus
    covered = []
    unknown = []
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
            continue
        shared[quota.code].append((name, need))
        if value >= need:
            covered.append(capacity)
            notes.append(f"quota {quota.code} ({quota.name}) allows {value:g} vCPUs; the pool needs {need}")
        else:
            problems.append(
                f"pool {name}: quota {quota.code} allows {value:g} vCPUs, the pool's limit of "
                f"{pool.gpu_limit} GPUs on {worst.name} needs {need}"
            )
    if covered:
        # One covered capacity type is enough: Karpenter falls back to it (spot -> on-demand).
        return PoolCheck(name, "pass", (), tuple(notes + problems + unknown))
    if unknown and not problems:
        return PoolCheck(name, "unknown", tuple(unknown), tuple(notes))
    return PoolCheck(name, "fail", tuple(problems + unknown), tuple(notes))


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
