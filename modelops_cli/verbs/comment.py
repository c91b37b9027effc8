"""`modelops comment`: the pull-request comment for one stack."""

from __future__ import annotations

import argparse

from ..common import EXIT_OK, EXIT_POLICY, UsageError, write_output
from .flags import add_report_arguments, add_stack_argument, finite_number, stack_of
from .inputs import StackInput, budget_and_region, check_plan, plan_from

HELP = (
    "The pull-request comment for one stack: changes against a base, policy verdicts and the cost ceiling before "
    "and after (exit 1 on a mandatory failure)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_argument(parser)
    parser.add_argument("--base", metavar="REF", help="git revision to compare with (e.g. origin/main)")
    parser.add_argument("--base-plan", metavar="FILE", help="or a preview-JSON file of the base")
    parser.add_argument("--head-plan", metavar="FILE", help="the head plan (default: plan the working tree)")
    parser.add_argument("--policy-config", metavar="FILE", help="default: policies/config/<stack>.json")
    parser.add_argument("--region", help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=finite_number, help=argparse.SUPPRESS)
    add_report_arguments(parser, ("markdown",))


def run(args: argparse.Namespace) -> int:
    from .. import comment
    from ..plan import PlanError, from_json, load_plan

    name = stack_of(args)
    stack = StackInput(name)
    try:
        if args.base_plan:
            base = load_plan(args.base_plan)
        elif args.base:
            base = from_json(comment.plan_at_revision(args.base, name), f"{name}@{args.base}")
        else:
            raise UsageError("give --base REF or --base-plan FILE")
        head = plan_from(args.head_plan, stack)
    except (PlanError, comment.BaseRevisionError) as exc:
        raise UsageError(str(exc)) from None
    report = check_plan(head, args.policy_config, stack)
    pricing = budget_and_region(args.region, args.budget, stack)
    write_output(comment.render_comment(name, base, head, report, pricing), args.out)
    return EXIT_POLICY if report.mandatory_failures else EXIT_OK
