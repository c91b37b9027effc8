"""`modelops check`: run the policy pack over a plan, with the CLI's config semantics, without the CLI.

Enforcement: the pack's default (advisory), then the config's `all`, then each rule's own entry; settings
are the rule's schema defaults, then the rule's entry, validated against its schema. A value unknown at
preview makes a rule "not evaluated" for that resource, never a pass; violations the rule found before
meeting it still fail (as `pulumi preview --policy-pack` reports them).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from .common import UsageError
from .inert import terminal
from .plan import SECRET, UNKNOWN, Plan
from .policy_config import PolicyConfigError
from .policy_config import read as read_policy_config

POLICIES_DIR = Path(__file__).resolve().parent.parent / "policies"
PACK_DEFAULT_LEVEL = "advisory"
LEVELS = ("advisory", "mandatory", "remediate", "disabled")


def policy_rules():
    """The pack's rules, imported the way the pack itself imports them (`rules`, from policies/)."""
    if str(POLICIES_DIR) not in sys.path:
        sys.path.insert(0, str(POLICIES_DIR))
    rules = importlib.import_module("rules")
    adapters = importlib.import_module("rules.adapters")
    framework = importlib.import_module("rules.framework")
    return rules.RULES, adapters, framework


def rule_standards():
    """The pack's citations module (rules/standards.py): what each rule implements, and where it is defined."""
    policy_rules()
    return importlib.import_module("rules.standards")


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
    rules, _, framework = policy_rules()
    by_id = {r.id: r for r in rules}
    problems = [f"{key}: no such policy in the pack" for key in config if key != "all" and key not in by_id]
    default = config.get("all", PACK_DEFAULT_LEVEL)
    if default not in LEVELS:
        problems.append(f"all: unknown enforcement level {default!r} (use one of {', '.join(LEVELS)})")
    resolved = {}
    for rule in rules:
        entry = config.get(rule.id, {})
        if isinstance(entry, str):
            entry = {"enforcementLevel": entry}
        level = entry.get("enforcementLevel", default)
        if level not in LEVELS:
            problems.append(f"{rule.id}: unknown enforcement level {level!r}")
        settings = framework.rule_settings(rule, entry)
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


def run_checks(plan: Plan, config: dict[str, Any]) -> CheckReport:
    rules, adapters, framework = policy_rules()
    resolved = resolve(config)
    resources = plan.resources()
    report = CheckReport(
        plan.source,
        {r: lvl for r, (lvl, _) in resolved.items()},
        {r.id: r.description for r in rules},
        resources=len(resources),
    )
    standards = rule_standards()
    report.cited = {r.id: (standards.cited(r.id, r.description), standards.help_uri(r.id)) for r in rules}
    secret_paths: dict[str, set[str]] = {r.urn: set() for r in resources}
    proxied = [(r, unknown_checking_proxy(_secrets_unreadable(r.inputs, "", secret_paths[r.urn]))) for r in resources]
    every_secret = set().union(*secret_paths.values()) if secret_paths else set()
    # one list for every stack rule: what a rule derives from it (objects by kind, selector indexes) is kept
    # for that list, so the rules together stay linear in the stack's size
    stack_resources = [framework.StackResource(r.type, r.name, r.urn, props) for r, props in proxied]
    for rule in rules:
        level, settings = resolved[rule.id]
        if level == "disabled":
            continue

        def add(outcome: str, urn: str, message: str, rule_id: str = rule.id, level: str = level) -> None:
            report.findings.append(Finding(rule_id, level, outcome, urn, message))

        if rule.scope == "resource":
            for resource, props in proxied:
                try:
                    identity = adapters.identity(resource.type, props, resource.name)
                except UnknownValueError as exc:
                    add("not-evaluated", resource.urn, _not_evaluated(exc, secret_paths[resource.urn]))
                    continue
                reason = framework.is_exempt(settings, *identity)
                with _malformed(rule.id, resource.urn):
                    messages, unknown = _until_unknown(rule.check(resource.type, props, settings))
                for message in messages:
                    add(
                        "exempt" if reason else "fail",
                        resource.urn,
                        f"{message} (exempt: {reason})" if reason else message,
                    )
                if unknown is not None and not reason:
                    add("not-evaluated", resource.urn, _not_evaluated(unknown, secret_paths[resource.urn]))
            continue
        with _malformed(rule.id, None):
            violations, unknown = _until_unknown(rule.check(stack_resources, settings))
        if unknown is not None:
            add("not-evaluated", "", _not_evaluated(unknown, every_secret))
        for resource, message in violations:
            reason = framework.is_exempt(settings, *adapters.identity(resource.type, resource.props, resource.name))
            add("exempt" if reason else "fail", resource.urn, f"{message} (exempt: {reason})" if reason else message)
    return report


# ---- output ----
