"""The readable form of a plan: each component with its children, and counts.

Names, types and diagnostics come from the program's config (model names, stack names) and are printed
through `inert.terminal`. The walk is iterative and counts descendants once, so a deep or wide plan (a
parent chain thousands long, a cycle of parents) takes linear time and never a RecursionError.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..inert import terminal


def _children(steps: list[dict[str, Any]]) -> dict[str | None, list[dict]]:
    children: dict[str | None, list[dict]] = {}
    for step in steps:
        children.setdefault(step["newState"].get("parent"), []).append(step)
    return children


def _descendant_counts(root: str | None, children: dict[str | None, list[dict]]) -> dict[str, int]:
    """Descendants under each URN reachable from `root`: one pre-order walk, then children before parents."""
    order: list[str] = []
    kids: dict[str | None, list[str]] = {}
    seen: set[str | None] = {root}
    stack: list[str | None] = [root]
    while stack:
        urn = stack.pop()
        for child in children.get(urn, []):
            if child["urn"] not in seen:
                seen.add(child["urn"])
                kids.setdefault(urn, []).append(child["urn"])
                order.append(child["urn"])
                stack.append(child["urn"])
    counts: dict[str, int] = {}
    for urn in reversed(order):
        counts[urn] = sum(1 + counts[k] for k in kids.get(urn, []))
    return counts


def render_tree(plan: dict[str, Any]) -> str:
    steps = plan["steps"]
    children = _children(steps)
    ops = Counter(step["op"] for step in steps)
    root = next((s for s in steps if s["newState"]["type"] == "pulumi:pulumi:Stack"), None)
    summary = ", ".join(f"{n} to {terminal(op)}" for op, n in sorted(ops.items()))
    title = terminal(root["urn"].rsplit("::", 1)[-1]) if root else "plan"
    lines = [f"{title}: {len(steps)} resources ({summary})"]
    root_urn = root["urn"] if root else None
    counts = _descendant_counts(root_urn, children)
    shown: set[str] = set()
    pending = [(step, 1) for step in reversed(children.get(root_urn, []))]
    while pending:
        step, depth = pending.pop()
        if step["urn"] in shown:  # a parent cycle in a hand-made plan: each resource once
            continue
        shown.add(step["urn"])
        state = step["newState"]
        count = counts.get(step["urn"], 0)
        extra = f"  [{count} resources]" if count else ""
        mark = "" if step["op"] == "create" else f" ({terminal(step['op'])})"
        name = terminal(step["urn"].rsplit("::", 1)[-1])
        lines.append(f"{'  ' * min(depth, 40)}{name}  {terminal(state['type'])}{mark}{extra}")
        pending += [(child, depth + 1) for child in reversed(children.get(step["urn"], []))]
    for diagnostic in plan.get("diagnostics", []):
        message = "\n    ".join(terminal(line) for line in str(diagnostic["message"]).splitlines())
        lines.append(f"{terminal(diagnostic['severity'])}: {message}")
    return "\n".join(lines)
