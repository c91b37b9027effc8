"""Pre-flight for the serverless fallbacks: Lambda must be able to give the stack's functions their reserved
concurrency. Apart from composition/preflight.py (GPU capacity and quotas) because it needs where each model runs
(composition/placement.py), which itself reads the capacity pre-flight's report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from components.config import StackConfig, lambda_function_name
from composition.placement import place
from composition.preflight import Status, _call, _CheckFailed, _client_config

if TYPE_CHECKING:
    import boto3

LAMBDA_UNRESERVED_MINIMUM = 100
"""What Lambda keeps unreserved for functions without reserved concurrency: "You can reserve up to the
Unreserved account concurrency value minus 100" (https://docs.aws.amazon.com/lambda/latest/dg/
configuration-concurrency.html); PutFunctionConcurrency refuses more with "decreases account's
UnreservedConcurrentExecution below its minimum value of [100]" (moto raises the same, behind
MOTO_LAMBDA_CONCURRENCY_QUOTA)."""


@dataclass(frozen=True)
class LambdaCheck:
    """Whether the account can give the stack's fallbacks their reserved concurrency."""

    status: Status
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def check_lambda_concurrency(
    cfg: StackConfig, stack: str, session: boto3.session.Session | None = None
) -> LambdaCheck | None:
    """After the stack's functions reserve their concurrency, the account's unreserved concurrency must stay at
    least LAMBDA_UNRESERVED_MINIMUM (Lambda refuses PutFunctionConcurrency otherwise, in the middle of `up`).
    The functions that exist already give back what they reserve now. None: the stack has no function."""
    wanted = {
        lambda_function_name(stack, name): model.serverless.reserved_concurrency
        for name, model in cfg.models.items()
        if place(cfg, name, model, None).serverless
    }
    if not wanted:
        return None
    import boto3

    session = session or boto3.session.Session()
    if session.get_credentials() is None:
        return LambdaCheck("unknown", ("Lambda concurrency not checked: no AWS credentials",))
    client = session.client("lambda", region_name=cfg.cluster.region, config=_client_config())
    try:
        limits = _call(client, "GetAccountSettings").get("AccountLimit") or {}
        unreserved = int(limits["UnreservedConcurrentExecutions"])
        total = int(limits.get("ConcurrentExecutions", 0))
        held = {name: _reserved_now(client, name) for name in wanted}
    except _CheckFailed as exc:
        return LambdaCheck("unknown", (f"Lambda concurrency: {exc}",))
    except (KeyError, TypeError, ValueError):
        return LambdaCheck("unknown", ("Lambda concurrency: GetAccountSettings answered without AccountLimit",))
    after = unreserved + sum(held.values()) - sum(wanted.values())
    detail = ", ".join(f"{n} {c}" for n, c in wanted.items())
    if after < LAMBDA_UNRESERVED_MINIMUM:
        return LambdaCheck(
            "fail",
            (
                f"Lambda: the stack reserves {sum(wanted.values())} concurrent executions ({detail}); the account "
                f"(limit {total}, {unreserved} unreserved now) would keep {after} unreserved, below the "
                f"{LAMBDA_UNRESERVED_MINIMUM} Lambda requires: lower serverless.reservedConcurrency or ask for a "
                "higher Lambda concurrency quota (Service Quotas L-B99A9384)",
            ),
        )
    return LambdaCheck(
        "pass",
        notes=(
            f"Lambda: reserving {detail} leaves {after} of {total} unreserved (at least {LAMBDA_UNRESERVED_MINIMUM})",
        ),
    )


def _reserved_now(client, function: str) -> int:
    """What an existing function reserves now (0 when it reserves nothing or does not exist yet)."""
    from botocore.exceptions import ClientError

    try:
        answer = _call(client, "GetFunctionConcurrency", FunctionName=function)
    except _CheckFailed as exc:
        cause = exc.__cause__
        if (
            isinstance(cause, ClientError)
            and cause.response.get("Error", {}).get("Code") == "ResourceNotFoundException"
        ):
            return 0
        raise
    return int(answer.get("ReservedConcurrentExecutions") or 0)


def format_lambda_check(check: LambdaCheck) -> str:
    lines = [f"{check.status.upper():7} lambda concurrency"]
    lines += [f"  - {p}" for p in check.problems]
    lines += [f"    {n}" for n in check.notes]
    return "\n".join(lines)
