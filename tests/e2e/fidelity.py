"""Comparing an offline plan with the real CLI's preview, and `modelops check` with the real policy run.

What must agree, for the same stack: every resource's URN, type, parent and provider; the inputs of
every Kubernetes object; and per rule and resource, the policy verdict (fail, not evaluated, pass).
The divergences that remain by design are named in KNOWN_DIVERGENCES and in the README, each pinned by
a test: when either side changes alone, a fidelity test fails.
"""

from __future__ import annotations

from typing import Any

from modelops_cli.plan import SECRET, UNKNOWN

KUBERNETES_PREFIX = "kubernetes:"


def steps_by_urn(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["urn"]: s for s in plan.get("steps", []) if s.get("op") != "same" or s.get("newState")}


def shape(plan: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """URN -> (type, parent, provider, protect, custom timeouts) of every resource the plan registers."""
    out = {}
    for urn, step in steps_by_urn(plan).items():
        state = step.get("newState") or step.get("oldState") or {}
        timeouts = tuple(sorted((state.get("customTimeouts") or {}).items()))
        out[urn] = (state.get("type"), state.get("parent"), state.get("provider"), bool(state.get("protect")), timeouts)
    return out


def _normal(value: Any) -> Any:
    """Secrets and unknowns compared by kind only (the real JSON and ours spell both the same way)."""
    if isinstance(value, dict):
        if value.get("4dabf18193072939515e22adb298388d") == "1b47061264138c4ac30d75fd1eb44270":
            return SECRET
        return {k: _normal(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def kubernetes_inputs(plan: dict[str, Any]) -> dict[str, Any]:
    """URN -> inputs of every Kubernetes object (providers excluded)."""
    out = {}
    for urn, step in steps_by_urn(plan).items():
        state = step.get("newState") or {}
        type_ = state.get("type", "")
        if type_.startswith(KUBERNETES_PREFIX):
            out[urn] = _normal(state.get("inputs", {}))
    return out


def differences(offline: Any, real: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(path, offline value, real value) for every leaf where two JSON values differ."""
    found: list[tuple[str, Any, Any]] = []

    def walk(a: Any, b: Any, where: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k, MISSING), b.get(k, MISSING), f"{where}.{k}")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=False)):
                walk(x, y, f"{where}[{i}]")
        elif a != b:
            found.append((where, a, b))

    walk(offline, real, path)
    return found


MISSING = "<missing>"

KNOWN_DIVERGENCES = {
    "aws-output-unknown-at-create": (
        "A value computed by AWS when a resource is created (an IAM role's ARN) is unknown in a real preview "
        "of a new stack; the offline mocks answer with the ARN the name determines. Offline is the stricter "
        "side: rules see the value and judge it, where the real preview says 'not evaluated'."
    ),
}


def known_divergence(path: str, offline: Any, real: Any) -> str | None:
    """The KNOWN_DIVERGENCES key that explains one difference, or None."""
    if (
        real == UNKNOWN
        and isinstance(offline, str)
        and offline.startswith("arn:aws:iam::")
        and path == ".metadata.annotations.eks.amazonaws.com/role-arn"
    ):
        return "aws-output-unknown-at-create"
    return None


# ---- policy verdicts ----

CANT_RUN = "can't run policy"


def real_verdicts(events: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(rule, resource URN or "" for the stack, outcome) for every fail and not-evaluated in the engine events."""
    verdicts = set()
    for event in events:
        policy = event.get("policyEvent")
        if not policy:
            continue
        outcome = "not-evaluated" if CANT_RUN in policy.get("message", "") else "fail"
        urn = policy.get("resourceUrn", "")
        verdicts.add((policy["policyName"], urn, outcome))
    return verdicts


def offline_verdicts(report: Any) -> set[tuple[str, str, str]]:
    """The same triples from a `modelops check` report (exemptions are passes under the CLI)."""
    return {(f.rule, f.urn, f.outcome) for f in report.findings if f.outcome in ("fail", "not-evaluated")}
