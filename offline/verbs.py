"""The analysis verbs of `modelops`: check, diff, comment, render, cost, smoke."""

from __future__ import annotations

import argparse
from pathlib import Path

from .cli import EXIT_OK, EXIT_POLICY, UsageError, _stack_settings, _write, plan_stack


def _plan_from(args: argparse.Namespace):
    """The plan a verb works on: `--plan FILE` (ours or the CLI's), else a fresh plan of `--stack`."""
    from .plan import PlanError, from_json, load_plan

    if getattr(args, "plan", None):
        try:
            return load_plan(args.plan)
        except PlanError as exc:
            raise UsageError(str(exc)) from None
    if not getattr(args, "stack", None):
        raise UsageError("give --stack NAME or --plan FILE")
    return from_json(plan_stack(args.stack), f"stack {args.stack}")


def policy_config_path(args: argparse.Namespace) -> Path:
    """`--policy-config`, else policies/config/<stack>.json, else the one of the stack's environment."""
    from .check import POLICIES_DIR

    if getattr(args, "policy_config", None):
        return Path(args.policy_config)
    if not getattr(args, "stack", None):
        raise UsageError("--plan needs --policy-config FILE (e.g. policies/config/prod.json)")
    by_stack = POLICIES_DIR / "config" / f"{args.stack}.json"
    if by_stack.exists():
        return by_stack
    return POLICIES_DIR / "config" / f"{_stack_settings(args.stack).model.environment}.json"


def check_report(args: argparse.Namespace):
    from .check import PolicyConfigError, load_policy_config, run_checks

    plan = _plan_from(args)
    try:
        return run_checks(plan, load_policy_config(policy_config_path(args)))
    except PolicyConfigError as exc:
        raise UsageError("policy config: " + "; ".join(exc.problems)) from None


def cmd_check(args: argparse.Namespace) -> int:
    from . import check

    report = check_report(args)
    artifact = args.plan or f"stacks/Pulumi.{args.stack}.yaml"
    text = {"table": lambda: check.format_table(report) + "\n", "json": lambda: check.format_json(report),
            "markdown": lambda: check.format_markdown(report),
            "sarif": lambda: check.format_sarif(report, artifact)}[args.format]()
    _write(text, args.out)
    return EXIT_POLICY if report.mandatory_failures else EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    from .render import write_manifests

    written = write_manifests(_plan_from(args), Path(args.out))
    print(f"wrote {len(written)} manifests to {args.out}")
    return EXIT_OK


def cmd_smoke(args: argparse.Namespace) -> int:
    from .smoke import format_results, smoke

    settings = _stack_settings(args.stack)
    results = smoke(settings.model, settings.stack)
    print(format_results(results))
    return EXIT_POLICY if any(r.outcome == "fail" for r in results) else EXIT_OK


def register(verb) -> None:
    check = verb("check", cmd_check, "Run the policy pack over a stack's plan or any preview-JSON file "
                 "(exit 1 when a mandatory rule fails).")
    check.add_argument("--stack", default=None, help="stack to plan and check (policy config: policies/config/<stack>.json)")
    check.add_argument("--plan", metavar="FILE", help="check this preview-JSON file (ours or `pulumi preview --json`)")
    check.add_argument("--policy-config", metavar="FILE", help="a --policy-pack-config JSON file")
    check.add_argument("--format", choices=["table", "json", "markdown", "sarif"], default="table")
    check.add_argument("--out", metavar="PATH|-", default="-", help="where to write the report (default: stdout)")

    render = verb("render", cmd_render, "Write a plan's Kubernetes objects as YAML manifests, one file per object.")
    render.add_argument("--stack", default="dev", help="stack to plan (default: dev)")
    render.add_argument("--plan", metavar="FILE", help="render this preview-JSON file instead of planning")
    render.add_argument("--out", metavar="DIR", required=True, help="output directory")

    smoke = verb("smoke", cmd_smoke, "Invoke each deployed serverless fallback with its sample payload.")
    smoke.add_argument("--stack", default="dev", help="stack name (default: dev)")
