"""The readable form of a plan: each component with its children, and counts."""

from __future__ import annotations

from collections import Counter
from typing import Any


def render_tree(plan: dict[str, Any]) -> str:
    steps = plan["steps"]
    children: dict[str | None, list[dict]] = {}
    for step in steps:
        children.setdefault(step["newState"].get("parent"), []).append(step)
    ops = Counter(step["op"] for step in steps)
    root = next((s for s in steps if s["newState"]["type"] == "pulumi:pulumi:Stack"), None)
    summary = ", ".join(f"{n} to {op}" for op, n in sorted(ops.items()))
    lines = [f"{root['urn'].rsplit('::', 1)[-1] if root else 'plan'}: {len(steps)} resources ({summary})"]

    def descendants(urn: str) -> int:
        return sum(1 + descendants(c["urn"]) for c in children.get(urn, []))

    def walk(urn: str | None, depth: int) -> None:
        for step in children.get(urn, []):
            state = step["newState"]
            name = step["urn"].rsplit("::", 1)[-1]
            count = descendants(step["urn"])
            extra = f"  [{count} resources]" if count else ""
            mark = "" if step["op"] == "create" else f" ({step['op']})"
            lines.append(f"{'  ' * depth}{name}  {state['type']}{mark}{extra}")
            walk(step["urn"], depth + 1)

    walk(root["urn"] if root else None, 1)
    for diagnostic in plan.get("diagnostics", []):
        lines.append(f"{diagnostic['severity']}: {diagnostic['message']}")
    return "\n".join(lines)
