"""`modelops check`: run the policy pack over a plan, with the CLI's config semantics, without the CLI.

Enforcement: the pack's default (advisory), then the config's `all`, then each rule's own entry; settings
are the rule's schema defaults, then the rule's entry, validated against its schema. A value unknown at
preview makes a rule "not evaluated" for that resource, never a pass; violations the rule found before
meeting it still fail (as `pulumi preview --policy-pack` reports them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from modelops_rules import RULES
from modelops_rules.adapters import identity
from modelops_rules.framework import Rule, StackResource, is_exempt, rule_settings
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from .common import UsageError
from .inert import terminal
from .plan import SECRET, UNKNOWN, Plan
from .policy_config import PolicyConfigError
from .policy_config import read as read_policy_config

POLICIES_DIR = Path(__file__).resolve().parent.parent / "policies"
PACK_DEFAULT_LEVEL = "advisory"
LEVELS = ("advisory", "mandatory", "remediate", "disabled")


@dataclass(frozen=True)
class Finding:
    rule: str
    level: str
    outcome: str
    """`fail`, `not-evaluated` or `exempt`."""
    urn: str
    message: str

    @property
    def resource(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


@dataclass
class CheckReport:
    source: str
    levels: dict[str, str]
    descriptions: dict[str, str]
    cited: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Per rule: its description with what it implements, and the page that defines its primary control."""
    findings: list[Finding] = field(default_factory=list)
    resources: int = 0

    def count(self, outcome: str, level: str | None = None) -> int:
        return sum(1 for f in self.findings if f.outcome == outcome and (level is None or f.level == level))

    @property
    def mandatory_failures(self) -> list[Finding]:
        return [f for f in self.findings if f.outcome == "fail" and f.level in ("mandatory", "remediate")]

    def summary(self) -> dict[str, int]:
        return {
            "rules": sum(1 for lvl in self.levels.values() if lvl != "disabled"),
            "resources": self.resources,
            "mandatoryFailures": len(self.mandatory_failures),
            "advisoryFailures": self.count("fail", "advisory"),
            "notEvaluated": self.count("not-evaluated"),
            "exempt": self.count("exempt"),
        }


def load_policy_config(path: Path) -> dict[str, Any]:
    """The policy config at `path` as the Pulumi CLI reads it (modelops_cli/policy_config.py `read`)."""
    return read_policy_config(path)


def resolve(config: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Rule id -> (enforcement level, settings), as the engine resolves a `--policy-pack-config` file."""
    by_id = {r.id: r for r in RULES}
    problems = [f"{key}: no such policy in the pack" for key in config if key != "all" and key not in by_id]
    default = config.get("all", PACK_DEFAULT_LEVEL)
    if default not in LEVELS:
        problems.append(f"all: unknown enforcement level {default!r} (use one of {', '.join(LEVELS)})")
    resolved = {}
    for rule in RULES:
        entry = config.get(rule.id, {})
        if isinstance(entry, str):
            entry = {"enforcementLevel": entry}
        level = entry.get("enforcementLevel", default)
        if level not in LEVELS:
            problems.append(f"{rule.id}: unknown enforcement level {level!r}")
        settings = rule_settings(rule, entry)
        schema = {"type": "object", "properties": rule.config_schema(), "additionalProperties": False}
        for error in jsonschema.Draft7Validator(schema).iter_errors(settings):
            where = ".".join(str(p) for p in error.path)
            problems.append(f"{rule.id}{'.' + where if where else ''}: {_problem(error)}")
        resolved[rule.id] = (level, settings)
    if problems:
        raise PolicyConfigError(problems)
    return resolved


def _problem(error: jsonschema.ValidationError) -> str:
    """jsonschema's message, or for a pattern the words the schema gives for it in `$comment` (a pattern says
    little to whoever edits the file)."""
    if error.validator in ("pattern", "not") and isinstance(error.schema, dict) and "$comment" in error.schema:
        return f"{terminal(repr(error.instance), 80)} is not {error.schema['$comment']}"
    return error.message


def _until_unknown(results) -> tuple[list[Any], UnknownValueError | None]:
    """A rule's violations up to the first value unknown at preview, and that unknown (or None).

    The pack reports each violation as the rule yields it, so violations found before the rule meets
    an unknown stand (a mandatory one fails the preview) beside the "can't run during preview" note.
    """
    found: list[Any] = []
    try:
        for item in results:
            found.append(item)
    except UnknownValueError as exc:
        return found, exc
    return found, None


def _secrets_unreadable(value: Any, path: str, secret_paths: set[str]) -> Any:
    """Secret values as unknowns. The real pack reads a secret in clear; an offline plan holds only `[secret]`,
    and a rule that read that text (an env list, a policy document, a container list) could pass what the
    real pack fails. A rule that reaches one is "not evaluated", never "pass"."""
    if value == SECRET:
        secret_paths.add(path)
        return UNKNOWN
    if isinstance(value, dict):
        return {k: _secrets_unreadable(v, f"{path}.{k}", secret_paths) for k, v in value.items()}
    if isinstance(value, list):
        return [_secrets_unreadable(v, f"{path}.{i}", secret_paths) for i, v in enumerate(value)]
    return value


def _not_evaluated(exc: UnknownValueError, secret_paths: set[str]) -> str:
    path = "." + ".".join(exc.props)
    if path in secret_paths:
        return f"not evaluated offline: {path} is a secret (the real policy pack reads it in clear)"
    return f"not evaluated at preview: {exc.message}"


class MalformedPlanError(UsageError):
    """A plan value no rule can read (a count that is NaN, a quantity that is a list): exit 2, naming it."""


@contextmanager
def _malformed(rule_id: str, urn: str | None) -> Iterator[None]:
    """A rule that fails on a value of the wrong type or out of range: the plan is malformed (exit 2, the rule
    and resource named), never a traceback, and never a pass."""
    try:
        yield
    except (ValueError, TypeError, OverflowError, ArithmeticError, AttributeError, KeyError, IndexError) as exc:
        where = f" on {terminal(urn.rsplit('::', 1)[-1], 120)}" if urn else ""
        raise MalformedPlanError(
            f"malformed plan: rule {rule_id}{where} cannot read a value: {terminal(exc, 200)}"
        ) from None


@dataclass(frozen=True)
class _Readable:
    """The plan's resources as the rules read them: secrets unreadable, values unknown at preview raising."""

    proxied: list[tuple[Any, Any]]
    """Each resource with its inputs behind pulumi-policy's unknown-checking proxy."""
    secret_paths: dict[str, set[str]]
    """Per resource URN, the input paths that held a secret."""
    stack_resources: list[StackResource]
    """One list for every stack rule: what a rule derives from it (objects by kind, selector indexes) is kept for
    that list, so the rules together stay linear in the stack's size."""

    @classmethod
    def of(cls, resources: list[Any]) -> _Readable:
        secret_paths: dict[str, set[str]] = {r.urn: set() for r in resources}
        proxied = [
            (r, unknown_checking_proxy(_secrets_unreadable(r.inputs, "", secret_paths[r.urn]))) for r in resources
        ]
        return cls(proxied, secret_paths, [StackResource(r.type, r.name, r.urn, props) for r, props in proxied])

    @property
    def every_secret(self) -> set[str]:
        return set().union(*self.secret_paths.values())


def _judged(rule_id: str, level: str, urn: str, message: str, exempt_because: str | None) -> Finding:
    """A violation the rule found: a failure, or kept as exempt with the policy config's reason."""
    if exempt_because:
        return Finding(rule_id, level, "exempt", urn, f"{message} (exempt: {exempt_because})")
    return Finding(rule_id, level, "fail", urn, message)


def _resource_rule_findings(rule: Rule, level: str, settings: dict[str, Any], plan: _Readable) -> Iterator[Finding]:
    for resource, props in plan.proxied:
        secrets = plan.secret_paths[resource.urn]
        try:
            exempt_because = is_exempt(settings, *identity(resource.type, props, resource.name))
        except UnknownValueError as exc:
            yield Finding(rule.id, level, "not-evaluated", resource.urn, _not_evaluated(exc, secrets))
            continue
        with _malformed(rule.id, resource.urn):
            messages, unknown = _until_unknown(rule.check(resource.type, props, settings))
        for message in messages:
            yield _judged(rule.id, level, resource.urn, message, exempt_because)
        if unknown is not None and not exempt_because:
            yield Finding(rule.id, level, "not-evaluated", resource.urn, _not_evaluated(unknown, secrets))


def _stack_rule_findings(rule: Rule, level: str, settings: dict[str, Any], plan: _Readable) -> Iterator[Finding]:
    with _malformed(rule.id, None):
        violations, unknown = _until_unknown(rule.check(plan.stack_resources, settings))
    if unknown is not None:
        yield Finding(rule.id, level, "not-evaluated", "", _not_evaluated(unknown, plan.every_secret))
    for resource, message in violations:
        exempt_because = is_exempt(settings, *identity(resource.type, resource.props, resource.name))
        yield _judged(rule.id, level, resource.urn, message, exempt_because)


def run_checks(plan: Plan, config: dict[str, Any]) -> CheckReport:
    resolved = resolve(config)
    resources = plan.resources()
    report = CheckReport(
        plan.source,
        {r: lvl for r, (lvl, _) in resolved.items()},
        {r.id: r.description for r in RULES},
        cited={r.id: (r.cited_description, r.help_uri) for r in RULES},
        resources=len(resources),
    )
    readable = _Readable.of(resources)
    for rule in RULES:
        level, settings = resolved[rule.id]
        if level == "disabled":
            continue
        findings = _resource_rule_findings if rule.scope == "resource" else _stack_rule_findings
        report.findings.extend(findings(rule, level, settings, readable))
    return report


# ---- output ----
