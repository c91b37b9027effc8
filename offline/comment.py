"""`modelops comment`: one markdown pull-request comment per stack: the change, policies, the GPU bill.

The output is stable for the same inputs (no timestamps), and starts with a marker line so a bot can
find its earlier comment and edit it in place.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import check, cost, diff, report
from .plan import Plan
from .stackfile import PROJECT_ROOT


class BaseRevisionError(Exception):
    """The base revision could not be planned."""


def marker(stack: str) -> str:
    return f"<!-- modelops-comment stack={stack} -->"


def plan_at_revision(ref: str, stack: str, root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """Plan `stack` as the program and stack file were at git `ref` (a worktree, removed afterwards).

    A stack that did not exist at `ref` plans as empty: everything in it is new.
    """
    with tempfile.TemporaryDirectory(prefix="modelops-base-") as tmp:
        tree = Path(tmp) / "base"
        added = subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), ref], cwd=root, capture_output=True, text=True
        )
        if added.returncode != 0:
            raise BaseRevisionError(f"cannot check out {ref}: {added.stderr.strip()}")
        try:
            if not (tree / "stacks" / f"Pulumi.{stack}.yaml").exists():
                return {"config": {}, "steps": [], "changeSummary": {}}
            env = {**os.environ, "PYTHONPATH": str(tree)}
            result = subprocess.run(
                [sys.executable, "-m", "offline", "plan", "--stack", stack, "--json", "-"],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if result.returncode != 0:
                raise BaseRevisionError(f"planning {stack} at {ref} failed: {result.stderr.strip()[-500:]}")
            return json.loads(result.stdout)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=root, capture_output=True)


def render_comment(
    stack: str, base: Plan, head: Plan, policy_report: check.CheckReport, region: str, budget_usd: float | None
) -> str:
    changes = diff.diff_plans(base, head)
    before = cost.estimate(base, region, budget_usd)
    after = cost.estimate(head, region, budget_usd)
    if before.ceiling_usd == after.ceiling_usd:
        ceiling = f"{cost.usd(after.ceiling_usd)}/month (unchanged)"
    else:
        delta = after.ceiling_usd - before.ceiling_usd
        ceiling = f"{cost.usd(before.ceiling_usd)} → {cost.usd(after.ceiling_usd)}/month ({'+' if delta > 0 else '−'}{cost.usd(abs(delta))})"
    budget_mark = {True: "✅", False: "❌", None: "ℹ️"}[after.within_budget]
    lines = [
        marker(stack),
        f"### modelops · stack `{stack}`",
        "",
        diff.format_markdown(changes).rstrip(),
        "",
        report.format_markdown(policy_report).rstrip(),
        "",
        f"**GPU cost ceiling**: {ceiling} {budget_mark} {cost.verdict(after)}; expected at min replicas "
        f"{cost.usd(before.expected_usd)} → {cost.usd(after.expected_usd)}; serverless cap {cost.usd(after.fallback_cap_usd)}",
    ]
    return "\n".join(lines) + "\n"
