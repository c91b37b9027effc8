"""`modelops check`: the policy pack's rules over a stack's plan or any preview-JSON file."""

from __future__ import annotations

import argparse

from ..common import EXIT_OK, EXIT_POLICY, write_output
from .flags import add_report_arguments, add_stack_argument, stack_unless_plan
from .inputs import StackInput, check_plan, plan_from

HELP = "Run the policy pack over a stack's plan or any preview-JSON file (exit 1 when a mandatory rule fails)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_argument(parser, "stack to plan and check (policy config: policies/config/<stack>.json)", plan_file=True)
    parser.add_argument("--plan", metavar="FILE", help="check this preview-JSON file (ours or `pulumi preview --json`)")
    parser.add_argument("--policy-config", metavar="FILE", help="a --policy-pack-config JSON file")
    add_report_arguments(parser, ("table", "json", "markdown", "sarif"))


def run(args: argparse.Namespace) -> int:
    from .. import report as formats

    stack = StackInput(stack_unless_plan(args))
    report = check_plan(plan_from(args.plan, stack), args.policy_config, stack)
    artifact = args.plan or f"stacks/Pulumi.{stack.name}.yaml"
    text = {
        "table": lambda: formats.format_table(report) + "\n",
        "json": lambda: formats.format_json(report),
        "markdown": lambda: formats.format_markdown(report),
        "sarif": lambda: formats.format_sarif(report, artifact),
    }[args.format]()
    write_output(text, args.out)
    return EXIT_POLICY if report.mandatory_failures else EXIT_OK
