"""`modelops cost`: the monthly GPU ceiling, the expected cost at min replicas and the serverless cap of a plan,
against the budget."""

from __future__ import annotations

import argparse

from ..common import EXIT_OK, write_output
from .flags import add_report_arguments, add_stack_argument, finite_number, stack_unless_plan
from .inputs import StackInput, budget_and_region, plan_from

HELP = "Monthly GPU ceiling, expected cost at min replicas and serverless cap, against the budget."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_argument(parser, "stack to plan (budget and region from its config)", plan_file=True)
    parser.add_argument("--plan", metavar="FILE", help="price this preview-JSON file instead")
    parser.add_argument("--region", help="price list region (default: the stack's, else us-east-1)")
    parser.add_argument("--budget", type=finite_number, help="monthly GPU budget in USD (default: modelops:budget)")
    add_report_arguments(parser, ("text", "json"))


def run(args: argparse.Namespace) -> int:
    from .. import cost

    stack = StackInput(stack_unless_plan(args))
    region, budget = budget_and_region(args.region, args.budget, stack)
    report = cost.estimate(plan_from(args.plan, stack), region, budget)
    write_output(cost.format_json(report) if args.format == "json" else cost.format_text(report), args.out)
    return EXIT_OK
