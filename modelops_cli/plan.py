"""Preview-JSON plans (`pulumi preview --json`): writing ours, from what the offline engine captured, and
reading ours or the Pulumi CLI's.

One view of a plan for every analysis verb (check, diff, render, cost): the resources it would leave
behind, with their inputs, and the steps that get there.
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import read_regular_file

MAX_PLAN_BYTES = 256 * 1024 * 1024
"""A bound on one read (a device or FIFO is refused before it): far above a preview, below what exhausts memory."""

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
SECRET = "[secret]"
SIG_KEY = "4dabf18193072939515e22adb298388d"
"""The key under which the engine marks special values (secrets, resource references) in a map."""
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


def mask_secrets(value: Any) -> Any:
    """Secret values (the engine's secret envelope) as `[secret]`, wherever a plan came from."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return SECRET
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


class PlanError(Exception):
    """A file that is not a preview-JSON plan."""


@dataclass(frozen=True)
class PlannedResource:
    urn: str
    type: str
    op: str
    inputs: dict[str, Any]
    """The inputs the resource will have (for a delete: the ones it had)."""
    old_inputs: dict[str, Any] | None = None
    parent: str | None = None
    provider: str | None = None
    dependencies: tuple[str, ...] = ()
    custom: bool = True
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    protect: bool = False
    """Protected: the engine refuses to delete or replace it."""

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    @property
    def is_kubernetes(self) -> bool:
        return self.type.startswith("kubernetes:") and not self.type.startswith("kubernetes:helm")

    @property
    def kind(self) -> str:
        return self.type.rsplit(":", 1)[-1]

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.inputs.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def k8s_name(self) -> str | None:
        name = self.metadata.get("name")
        return name if isinstance(name, str) else None

    @property
    def namespace(self) -> str | None:
        ns = self.metadata.get("namespace")
        return ns if isinstance(ns, str) else None


@dataclass(frozen=True)
class Plan:
    steps: list[dict[str, Any]]
    config: dict[str, Any]
    source: str = "<plan>"

    def resources(self, include_deleted: bool = False) -> list[PlannedResource]:
        out = []
        for step in self.steps:
            op = step.get("op", "same")
            new, old = step.get("newState"), step.get("oldState")
            if op in ("delete", "discard", "delete-replaced", "discard-replaced", "remove-pending-replace"):
                if not include_deleted or old is None:
                    continue
                state = old
            elif new is not None:
                state = new
            else:
                continue
            out.append(
                PlannedResource(
                    urn=step["urn"],
                    type=state.get("type") or _type_of(step["urn"]),
                    op=op,
                    inputs=mask_secrets(state.get("inputs") or {}),
                    old_inputs=mask_secrets((old or {}).get("inputs")) if old else None,
                    parent=state.get("parent"),
                    provider=state.get("provider"),
                    dependencies=tuple(state.get("dependencies") or ()),
                    custom=state.get("custom", True),
                    property_dependencies=state.get("propertyDependencies") or {},
                    protect=bool(state.get("protect")),
                )
            )
        return out

    def stack_name(self) -> str | None:
        for step in self.steps:
            parts = step.get("urn", "").split("::")
            if len(parts) >= 2 and parts[0].startswith("urn:pulumi:"):
                return parts[0][len("urn:pulumi:") :]
        return None


def _type_of(urn: str) -> str:
    return urn.split("::")[2].rsplit("$", 1)[-1]


def from_json(data: Any, source: str = "<plan>") -> Plan:
    """A preview-JSON document as a Plan; anything else (an empty object, a policy config, a failed
    preview, steps of the wrong shape) is a PlanError naming what is wrong."""
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise PlanError(f"{source}: not a `pulumi preview --json` document (no steps list)")
    errors = [
        d.get("message", "").strip()
        for d in data.get("diagnostics") or []
        if isinstance(d, dict) and d.get("severity") == "error"
    ]
    if errors:
        raise PlanError(f"{source}: the preview failed, so it plans nothing: {errors[0][:300]}")
    for i, step in enumerate(data["steps"]):
        if not isinstance(step, dict) or not isinstance(step.get("urn"), str) or not step["urn"].startswith("urn:"):
            raise PlanError(f"{source}: steps[{i}] has no urn")
        if not isinstance(step.get("op", "same"), str):
            raise PlanError(f"{source}: steps[{i}].op is not a string")
        for key in ("newState", "oldState"):
            state = step.get(key)
            if state is not None and (not isinstance(state, dict) or not isinstance(state.get("inputs", {}), dict)):
                raise PlanError(f"{source}: steps[{i}].{key} is not a resource state")
    if data.get("config") is not None and not isinstance(data["config"], dict):
        raise PlanError(f"{source}: config is not an object")
    if _deeper_than(data, MAX_PLAN_DEPTH):
        raise PlanError(f"{source}: nested more than {MAX_PLAN_DEPTH} levels deep; not a plan any engine writes")
    return Plan(data["steps"], data.get("config") or {}, source)


MAX_PLAN_DEPTH = 100
"""Levels of objects and lists a plan may nest: a Kubernetes object in a step is about 20 deep. Every verb
walks values recursively (masking, diffs, YAML); a deeper hand-made plan would end in a RecursionError."""


def _deeper_than(value: Any, limit: int) -> bool:
    """Iteratively, so that measuring a hostile document cannot itself recurse too deep."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            pending += [(child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)]
    return False


def load_plan(path: str | Path) -> Plan:
    path = Path(path)
    try:
        data = json.loads(read_regular_file(path, MAX_PLAN_BYTES).decode("utf-8"))
    except FileNotFoundError:
        raise PlanError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise PlanError(f"{path}: is a directory, not a plan file") from None
    except UnicodeDecodeError:
        raise PlanError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise PlanError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise PlanError(f"{path}: nested too deeply to be a plan") from None
    except OSError as exc:
        raise PlanError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return from_json(data, str(path))


def contains_unknown(value: Any) -> bool:
    if value == UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_unknown(v) for v in value)
    return False


# ---- writing: what the offline engine captured, in the CLI's shape ----


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str | None
    provider: str | None
    protect: bool
    retain_on_delete: bool
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    ignore_changes: list[str]
    inputs: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    custom_timeouts: dict[str, float] = field(default_factory=dict)
    """Seconds per operation (the engine's state form), from the resource's custom timeouts."""
    additional_secret_outputs: list[str] = field(default_factory=list)
    replace_on_changes: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    """Not part of the engine's state (it decides a replacement's order): kept for tests."""
    aliases: list[dict[str, Any]] = field(default_factory=list)
    """The alias specs the program registered (the engine records only an alias that matched old state)."""
    op: str = "create"
    """`create`, or `read` for resources read from elsewhere (a StackReference)."""


def _ordered(registrations: list[Registration]) -> list[Registration]:
    """Parents and dependencies first, ties broken by URN: stable across runs whatever the scheduling."""
    by_urn = {r.urn: r for r in registrations}
    needs = {
        r.urn: {
            u
            for u in [r.parent, *r.dependencies, (r.provider or "").rsplit("::", 1)[0]]
            if u and u in by_urn and u != r.urn
        }
        for r in registrations
    }
    waiting_on: dict[str, list[str]] = {}
    for urn, deps in needs.items():
        for dep in deps:
            waiting_on.setdefault(dep, []).append(urn)
    ready = [urn for urn, deps in needs.items() if not deps]
    heapq.heapify(ready)
    out = []
    while ready:
        urn = heapq.heappop(ready)
        out.append(by_urn[urn])
        for child in waiting_on.get(urn, []):
            needs[child].discard(urn)
            if not needs[child]:
                heapq.heappush(ready, child)
    return out


def to_preview_json(
    config: dict[str, str],
    secret_keys: list[str],
    registrations: list[Registration],
    diagnostics: list[dict[str, str]],
) -> dict[str, Any]:
    steps = []
    for reg in _ordered(registrations):
        step: dict[str, Any] = {"op": reg.op, "urn": reg.urn}
        if reg.provider:
            step["provider"] = reg.provider
        step["newState"] = _new_state(reg)
        steps.append(step)
    shown_config = {k: (SECRET if k in secret_keys else v) for k, v in sorted(config.items())}
    summary: dict[str, int] = {}
    for step in steps:
        # The CLI's summary leaves reads out (a StackReference's read step is not a change of this stack).
        if step["op"] != "read":
            summary[step["op"]] = summary.get(step["op"], 0) + 1
    plan = {"config": shown_config, "steps": steps, "changeSummary": dict(sorted(summary.items()))}
    if diagnostics:
        plan["diagnostics"] = diagnostics
    return plan


def _new_state(reg: Registration) -> dict[str, Any]:
    """A step's `newState`, its keys in the CLI's order."""
    state: dict[str, Any] = {"urn": reg.urn, "custom": reg.custom, "type": reg.type}
    # As the CLI writes a preview: inputs of custom resources only; no outputs of components or the
    # stack (their registered outputs are not part of a preview). Reads are external, with an id.
    if reg.custom:
        state["inputs"] = reg.inputs
    if reg.op == "read":
        state["external"] = True
        state["id"] = reg.inputs.get("name", reg.name)
    if reg.outputs and reg.custom:
        state["outputs"] = reg.outputs
    optional = {
        "parent": reg.parent,
        "protect": reg.protect,
        "retainOnDelete": reg.retain_on_delete,
        "dependencies": reg.dependencies,
        "provider": reg.provider,
        "propertyDependencies": reg.property_dependencies,
        "ignoreChanges": reg.ignore_changes,
        "replaceOnChanges": reg.replace_on_changes,
        "customTimeouts": reg.custom_timeouts,
        "additionalSecretOutputs": reg.additional_secret_outputs,
    }
    state.update((key, value) for key, value in optional.items() if value)  # only what is set, as the CLI writes
    return state


def dumps(plan: dict[str, Any]) -> str:
    """The plan as stable JSON text (the same bytes for the same stack)."""
    return json.dumps(plan, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
