"""What several verbs read the same way: the stack (loaded once, when first needed), the plan a verb works on, the
policy config that judges it, and the budget and region that price it."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..common import UsageError, plan_settings, stack_settings
from ..inert import terminal

if TYPE_CHECKING:
    from ..check import CheckReport
    from ..plan import Plan
    from ..stackfile import StackSettings


class StackInput:
    """The stack a verb was given (`stack_of`), or none when a plan file stands in for it. Its file is read and
    validated once, and only when a verb needs it: a verb given `--plan` and `--policy-config` reads no stack."""

    def __init__(self, name: str | None) -> None:
        self.name = name

    @cached_property
    def settings(self) -> StackSettings:
        if self.name is None:
            raise UsageError("give --stack NAME or --plan FILE")
        return stack_settings(self.name)


def plan_from(plan_file: str | None, stack: StackInput) -> Plan:
    """The plan a verb works on: `--plan FILE` (ours or the CLI's), else a fresh plan of the stack."""
    from ..plan import PlanError, from_json, load_plan

    if plan_file:
        try:
            return load_plan(plan_file)
        except PlanError as exc:
            raise UsageError(str(exc)) from None
    return from_json(plan_settings(stack.settings), f"stack {stack.name}")


def policy_config_path(policy_config: str | None, stack: StackInput) -> Path:
    """`--policy-config`, else policies/config/<stack>.json, else the one of the stack's environment."""
    from ..check import POLICIES_DIR

    if policy_config:
        return Path(policy_config)
    if stack.name is None:
        raise UsageError("--plan needs --policy-config FILE (e.g. policies/config/prod.json)")
    by_stack = POLICIES_DIR / "config" / f"{stack.name}.json"
    if by_stack.exists():
        return by_stack
    return POLICIES_DIR / "config" / f"{stack.settings.model.environment}.json"


def check_plan(plan: Plan, policy_config: str | None, stack: StackInput) -> CheckReport:
    """The policy report of `plan` under the policy config named (`--policy-config`, else the stack's)."""
    from ..check import load_policy_config, run_checks
    from ..policy_config import PolicyConfigError

    try:
        return run_checks(plan, load_policy_config(policy_config_path(policy_config, stack)))
    except PolicyConfigError as exc:
        raise UsageError(config_problems("policy config: ", exc)) from None


def config_problems(prefix: str, exc: Any) -> str:
    """A validator's problems, each bounded: they quote the file's values, which may be a megabyte long."""
    return prefix + "; ".join(terminal(problem, 300) for problem in exc.problems[:20])


def budget_and_region(region: str | None, budget: float | None, stack: StackInput) -> tuple[str, float | None]:
    """`--region` and `--budget`, else the stack's (`modelops:cluster.region`, `modelops:budget`), else us-east-1
    and no budget when a plan file stands in for the stack."""
    if stack.name is None:
        return region or "us-east-1", budget
    model = stack.settings.model
    return region or model.cluster.region, budget if budget is not None else model.budget.monthly_gpu_usd
