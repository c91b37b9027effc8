"""`modelops diff`: what a change creates, deletes, updates and replaces, from preview-JSON plans.

Two plans (ours or the CLI's) are compared by what each would leave behind, resource by resource (URN),
input by input. One plan alone is read as the CLI wrote it: each step's old and new state. Changed
properties are listed by path with old -> new values; secrets are masked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from .inert import md_code, terminal
from .plan import SECRET, UNKNOWN, Plan, PlannedResource, mask_secrets

_SECRET_KEY = re.compile(r"(password|secret|token|credential|kubeconfig|private.?key)", re.IGNORECASE)
SHOWN_UNKNOWN = "(known after apply)"

# Inputs whose change makes the provider replace the resource instead of updating it in place.
_REPLACE_ON = {
    "kubernetes:": ("metadata.name", "metadata.namespace"),
    "kubernetes:apps/v1:Deployment": ("spec.selector",),
    "kubernetes:apps/v1:DaemonSet": ("spec.selector",),
    "kubernetes:apps/v1:StatefulSet": ("spec.selector", "spec.serviceName", "spec.volumeClaimTemplates"),
    "aws:ecr/repository:Repository": ("name",),
    "aws:lambda/function:Function": ("name", "packageType"),
    "aws:iam/role:Role": ("name",),
    "aws:cloudwatch/logGroup:LogGroup": ("name",),
    "aws:lambda/alias:Alias": ("name", "functionName"),
    "aws:lambda/functionUrl:FunctionUrl": ("functionName", "qualifier"),
}


@dataclass(frozen=True)
class Change:
    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class ResourceDiff:
    urn: str
    type: str
    op: str
    """create, delete, update or replace."""
    changes: tuple[Change, ...] = ()
    replace_reasons: tuple[str, ...] = ()
    protected: bool = False
    """The resource is protected: the engine refuses this delete or replace, and the update fails."""

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    @property
    def refused(self) -> bool:
        return self.protected and self.op in ("delete", "replace")


@dataclass
class PlanDiff:
    resources: list[ResourceDiff] = field(default_factory=list)

    def of(self, op: str) -> list[ResourceDiff]:
        return [r for r in self.resources if r.op == op]

    def counts(self) -> dict[str, int]:
        return {op: len(self.of(op)) for op in ("create", "update", "replace", "delete")}

    @property
    def empty(self) -> bool:
        return not self.resources

    @property
    def refused(self) -> list[ResourceDiff]:
        """Deletes and replaces of protected resources: a real preview fails on each."""
        return [r for r in self.resources if r.refused]


def mask(value: Any, key: str = "") -> Any:
    """Secrets as [secret] (secret-looking keys too: a diff shows values), unknowns as a placeholder."""
    if isinstance(value, dict):
        return {k: mask(v, k) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [mask(v, key) for v in value]
    if value == UNKNOWN:
        return SHOWN_UNKNOWN
    if key and _SECRET_KEY.search(key) and isinstance(value, str) and value not in (SECRET, SHOWN_UNKNOWN):
        return SECRET
    return value


def _changes(old: Any, new: Any, path: str = "") -> list[Change]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            if key.startswith("__"):
                continue
            sub = f"{path}.{key}" if path else key
            if key not in old:
                out.append(Change(sub, None, new[key]))
            elif key not in new:
                out.append(Change(sub, old[key], None))
            else:
                out += _changes(old[key], new[key], sub)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=False)):
            out += _changes(a, b, f"{path}[{i}]")
        return out
    return [] if old == new else [Change(path or ".", old, new)]


def _replace_reasons(resource_type: str, changes: list[Change]) -> list[str]:
    keys = [p for prefix, paths in _REPLACE_ON.items() if resource_type.startswith(prefix) for p in paths]
    return sorted(
        {
            c.path
            for c in changes
            for k in keys
            if c.path == k or c.path.startswith(k + ".") or c.path.startswith(k + "[")
        }
    )


def _resource_diff(
    urn: str, type_: str, old: dict | None, new: dict | None, op: str | None = None
) -> ResourceDiff | None:
    if old is None:
        return ResourceDiff(urn, type_, "create")
    if new is None:
        return ResourceDiff(urn, type_, "delete")
    # Values the provider fills in on both sides (autonames, defaults) differ between any two previews.
    defaults = set(old.get("__defaults") or []) & set(new.get("__defaults") or [])
    changes = [
        c
        for c in _changes(mask(old), mask(new))
        if c.path.split(".", 1)[0].split("[", 1)[0] not in defaults and c.old != SHOWN_UNKNOWN
    ]  # unknown before is not a change, only not yet known
    if not changes and op in (None, "same"):
        return None
    reasons = _replace_reasons(type_, changes)
    kind = "replace" if reasons or (op or "").startswith(("replace", "create-replacement")) else "update"
    return ResourceDiff(urn, type_, kind, tuple(changes), tuple(reasons))


def diff_plans(base: Plan, head: Plan) -> PlanDiff:
    """What changes between the state `base` leaves and the state `head` leaves."""
    before = {r.urn: r for r in base.resources()}
    after = {r.urn: r for r in head.resources()}
    out = PlanDiff()
    for urn in sorted(set(before) | set(after)):
        old, new = before.get(urn), after.get(urn)
        if old and new and old.type != new.type:
            out.resources.append(ResourceDiff(urn, new.type, "replace", replace_reasons=("type",)))
            continue
        either = new or old
        assert either is not None  # the URN came from one side or the other
        entry = _resource_diff(urn, either.type, old.inputs if old else None, new.inputs if new else None)
        if entry:
            out.resources.append(replace(entry, protected=bool(old and old.protect)))
    return out


def diff_steps(plan: Plan) -> PlanDiff:
    """A single preview's own steps: creates, deletes, and old -> new inputs of updates and replaces."""
    out = PlanDiff()
    resources = {(r.urn, r.op): r for r in plan.resources(include_deleted=True)}
    for step in plan.steps:
        op = step.get("op", "same")
        if op in ("same", "read", "refresh", "discard-replaced", "delete-replaced", "import"):
            continue
        resource: PlannedResource | None = resources.get((step["urn"], op))
        if resource is None:
            continue
        protected = bool((step.get("oldState") or {}).get("protect"))
        if op == "create":
            out.resources.append(ResourceDiff(resource.urn, resource.type, "create"))
        elif op in ("delete", "discard"):
            out.resources.append(ResourceDiff(resource.urn, resource.type, "delete", protected=protected))
        else:
            old = mask_secrets((step.get("oldState") or {}).get("inputs") or {})
            entry = _resource_diff(resource.urn, resource.type, old, resource.inputs, op)
            if entry is None:
                detailed = sorted((step.get("detailedDiff") or {}).keys()) or list(step.get("diffReasons") or [])
                entry = ResourceDiff(
                    resource.urn, resource.type, "update", tuple(Change(p, "(changed)", "(changed)") for p in detailed)
                )
            out.resources.append(replace(entry, protected=protected))
    return out


# ---- output ----


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _short(value: Any, limit: int = 80) -> str:
    text = _text(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pair(old: Any, new: Any, limit: int = 80) -> tuple[str, str]:
    """Old and new values within `limit` characters each, cut around where they first differ: two digests
    that share 60 characters show the part that changed, not the same truncated prefix twice."""
    a, b = _text(old), _text(new)
    if old is None or new is None or (len(a) <= limit and len(b) <= limit):
        return _short(old, limit), _short(new, limit)
    common = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    start = max(0, common - limit // 4)  # a little of what they share, for context

    def window(text: str) -> str:
        body = text[start : start + limit - 2]
        return ("…" if start else "") + body + ("…" if start + len(body) < len(text) else "")

    return window(a), window(b)


_SYMBOL = {"create": "+", "update": "~", "replace": "±", "delete": "-"}


def summary_line(d: PlanDiff) -> str:
    c = d.counts()
    return f"{c['create']} to create, {c['update']} to update, {c['replace']} to replace, " f"{c['delete']} to delete"


def refusal(r: ResourceDiff) -> str:
    """The refusal as plain text (JSON output); `format_text` and `format_markdown` make its values inert."""
    return _refusal(r, r.name, _shell_quoted(r.urn))


def _refusal(r: ResourceDiff, name: str, urn: str) -> str:
    return (
        f"{name} is protected: `pulumi preview` and `up` refuse to {r.op} it; unprotect it first "
        f"(`pulumi state unprotect {urn}`) if the {r.op} is intended"
    )


def _shell_quoted(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def format_text(d: PlanDiff) -> str:
    """For a terminal: every name, type, path and value from the plans through `terminal`."""
    if d.empty:
        return "no changes\n"
    lines = [summary_line(d)]
    lines += [f"error: {_refusal(r, terminal(r.name), terminal(_shell_quoted(r.urn)))}" for r in d.refused]
    for r in d.resources:
        lines.append(f"{_SYMBOL[r.op]} {r.op:7} {terminal(r.type)} {terminal(r.name)}")
        if r.replace_reasons:
            lines.append(f"    replaced because {terminal(', '.join(r.replace_reasons))} changed")
        for c in r.changes:
            old, new = _pair(c.old, c.new)
            lines.append(f"    {terminal(c.path)}: {terminal(old)} -> {terminal(new)}")
    return "\n".join(lines) + "\n"


def to_json(d: PlanDiff) -> dict[str, Any]:
    return {
        "summary": d.counts(),
        "refused": [refusal(r) for r in d.refused],
        "resources": [
            {
                "urn": r.urn,
                "type": r.type,
                "op": r.op,
                "replaceReasons": list(r.replace_reasons),
                "changes": [{"path": c.path, "old": c.old, "new": c.new} for c in r.changes],
            }
            for r in d.resources
        ],
    }


def format_markdown(d: PlanDiff, collapse_after: int = 25) -> str:
    if d.empty:
        return "**Changes**: none\n"
    rows = ["| | resource | type | change |", "| --- | --- | --- | --- |"]
    for r in d.resources:
        # every path, value, name and type is a code span of its own (inert.md_code): nothing from a plan can
        # end the row, the table or the <details> around it
        detail = "; ".join(
            "{}: {} → {}".format(md_code(c.path), *(md_code(v) for v in _pair(c.old, c.new, 40))) for c in r.changes[:6]
        )
        if len(r.changes) > 6:
            detail += f"; … {len(r.changes) - 6} more"
        if r.replace_reasons:
            detail = f"**replace** ({', '.join(md_code(p) for p in r.replace_reasons)}) " + detail
        rows.append(f"| {_SYMBOL[r.op]} | {md_code(r.name)} | {md_code(r.type)} | {detail or r.op} |")
    table = "\n".join(rows)
    head = f"**Changes**: {summary_line(d)}"
    if d.refused:
        head += "\n\n" + "\n".join(
            f"❌ {md_code(r.name, cell=False)} is protected: {md_code('pulumi preview', cell=False)} and {md_code('up', cell=False)} "
            f"refuse to {r.op} it; unprotect it first "
            f"({md_code('pulumi state unprotect ' + _shell_quoted(r.urn), cell=False)}) if the {r.op} is intended"
            for r in d.refused
        )
    if len(d.resources) > collapse_after:
        return f"{head}\n\n<details><summary>{len(d.resources)} resources</summary>\n\n{table}\n\n</details>\n"
    return f"{head}\n\n{table}\n"
