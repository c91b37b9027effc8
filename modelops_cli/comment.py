"""`modelops comment`: one markdown pull-request comment per stack: the change, policies, the GPU bill.

The output is stable for the same inputs (no timestamps), and starts with a marker line so a bot can
find its earlier comment and edit it in place. The verdict comes next, before any value from a plan, and is
derived only from counts; every value from a plan or stack passes through `inert`, so none can fake a
heading or a verdict, open an HTML comment that hides the real one, or close the table or `<details>` it sits
in (issue #26, class 1).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import check, cost, diff, report
from .common import UsageError, checked_stack_name
from .inert import md_code, terminal
from .plan import Plan
from .stackfile import PROJECT_ROOT


class BaseRevisionError(Exception):
    """The base revision could not be planned."""


def marker(stack: str) -> str:
    return f"<!-- modelops-comment stack={checked_stack_name(stack)} -->"


def _commit_of(ref: str, root: Path) -> str:
    """The commit `ref` names. A value starting with '-' would be read by git as an option
    (`--output=…` writes a file): refused, and `--end-of-options` keeps any other value an operand."""
    if not ref or ref.startswith("-") or not ref.isprintable():
        raise UsageError(f"--base {terminal(ref, 120)!r}: not a git revision (it must not start with '-')")
    found = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if found.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40,64}", found.stdout.strip()):
        raise BaseRevisionError(f"cannot check out {terminal(ref, 120)}: no such commit")
    return found.stdout.strip()


def plan_at_revision(ref: str, stack: str, root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """Plan `stack` as the program and stack file were at git `ref` (a worktree, removed afterwards).

    A stack that did not exist at `ref` plans as empty: everything in it is new.
    """
    stack = checked_stack_name(stack)
    commit = _commit_of(ref, root)
    with tempfile.TemporaryDirectory(prefix="modelops-base-") as tmp:
        tree = Path(tmp) / "base"
        added = subprocess.run(
            ["git", "worktree", "add", "--detach", "--", str(tree), commit], cwd=root, capture_output=True, text=True
        )
        if added.returncode != 0:
            raise BaseRevisionError(f"cannot check out {terminal(ref, 120)}: {terminal(added.stderr.strip(), 500)}")
        try:
            if not (tree / "stacks" / f"Pulumi.{stack}.yaml").exists():
                return {"config": {}, "steps": [], "changeSummary": {}}
            env = {**os.environ, "PYTHONPATH": str(tree)}
            result = subprocess.run(
                [sys.executable, "-m", *_plan_command_at(tree), "--stack", stack],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if result.returncode != 0:
                raise BaseRevisionError(
                    f"planning {stack} at {terminal(ref, 120)} failed: {terminal(result.stderr.strip()[-500:])}"
                )
            return json.loads(result.stdout)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=root, capture_output=True)


def _plan_command_at(tree: Path) -> list[str]:
    """The JSON plan command as the revision checked out at `tree` spells it: revisions before the CLI package was
    named modelops_cli have it as `offline`, with `--json -` (today a deprecated alias of `--format json --out -`)."""
    if (tree / "modelops_cli").is_dir():
        return ["modelops_cli", "plan", "--format", "json", "--out", "-"]
    return ["offline", "plan", "--json", "-"]


def render_comment(
    stack: str, base: Plan, head: Plan, policy_report: check.CheckReport, pricing: tuple[str, float | None]
) -> str:
    """The comment's Markdown; `pricing` is the price list's region and the monthly GPU budget (None: no budget)."""
    region, budget_usd = pricing
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
        f"### modelops · stack {md_code(stack, cell=False)}",
        "",
        verdict_line(policy_report, changes),
        "",
        diff.format_markdown(changes).rstrip(),
        "",
        report.format_markdown(policy_report).rstrip(),
        "",
        f"**GPU cost ceiling**: {ceiling} {budget_mark} {cost.verdict(after)}; expected at min replicas "
        f"{cost.usd(before.expected_usd)} → {cost.usd(after.expected_usd)}; serverless cap {cost.usd(after.fallback_cap_usd)}",
    ]
    return "\n".join(lines) + "\n"


def verdict_line(policy_report: check.CheckReport, changes: diff.PlanDiff) -> str:
    """The comment's verdict, from counts only: what would stop the change (mandatory policy failures, and
    deletes or replaces of protected resources, which a real preview refuses). No text from a plan."""
    failures, refused = len(policy_report.mandatory_failures), len(changes.refused)
    if failures or refused:
        return (
            f"**Verdict**: ❌ blocked: {failures} mandatory policy failure(s), "
            f"{refused} refused change(s) of protected resources"
        )
    return "**Verdict**: ✅ no mandatory policy failures, no refused changes"
