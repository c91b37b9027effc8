"""`modelops diff`: two preview-JSON plans compared (BASE HEAD), or one plan's own steps."""

from __future__ import annotations

import argparse
import json

from ..common import EXIT_OK, EXIT_POLICY, UsageError, write_output
from .flags import add_report_arguments

HELP = "Compare two preview-JSON plans (BASE HEAD), or list one plan's own steps."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plans", nargs="+", metavar="PLAN.json", help="one plan, or BASE.json HEAD.json")
    add_report_arguments(parser, ("text", "json", "markdown"))


def run(args: argparse.Namespace) -> int:
    from .. import diff
    from ..plan import PlanError, load_plan

    if len(args.plans) > 2:
        raise UsageError(f"diff takes one plan or two (BASE HEAD), not {len(args.plans)}")
    try:
        plans = [load_plan(p) for p in args.plans]
    except PlanError as exc:
        raise UsageError(str(exc)) from None
    result = diff.diff_plans(*plans) if len(plans) == 2 else diff.diff_steps(plans[0])
    text = {
        "text": lambda: diff.format_text(result),
        "markdown": lambda: diff.format_markdown(result),
        "json": lambda: json.dumps(diff.to_json(result), indent=2) + "\n",
    }[args.format]()
    write_output(text, args.out)
    # A real preview fails on a protected resource's delete or replace: so does the diff.
    return EXIT_POLICY if result.refused else EXIT_OK
