"""The analysis verbs of `modelops`: check, diff, comment, render, cost, smoke."""

from __future__ import annotations

import argparse
from pathlib import Path

from .cli import EXIT_OK, EXIT_POLICY, UsageError, _stack_settings, plan_stack


def _plan_from(args: argparse.Namespace):
    """The plan a verb works on: `--plan FILE` (ours or the CLI's), else a fresh plan of `--stack`."""
    from .plan import PlanError, from_json, load_plan

    if getattr(args, "plan", None):
        try:
            return load_plan(args.plan)
        except PlanError as exc:
            raise UsageError(str(exc)) from None
    return from_json(plan_stack(args.stack), f"stack {args.stack}")


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
    render = verb("render", cmd_render, "Write a plan's Kubernetes objects as YAML manifests, one file per object.")
    render.add_argument("--stack", default="dev", help="stack to plan (default: dev)")
    render.add_argument("--plan", metavar="FILE", help="render this preview-JSON file instead of planning")
    render.add_argument("--out", metavar="DIR", required=True, help="output directory")

    smoke = verb("smoke", cmd_smoke, "Invoke each deployed serverless fallback with its sample payload.")
    smoke.add_argument("--stack", default="dev", help="stack name (default: dev)")
