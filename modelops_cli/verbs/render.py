"""`modelops render`: a plan's Kubernetes objects written as YAML manifests, one file per object."""

from __future__ import annotations

import argparse

from ..common import EXIT_OK, UsageError
from ..inert import terminal
from .flags import add_stack_argument, stack_unless_plan
from .inputs import StackInput, plan_from

HELP = "Write a plan's Kubernetes objects as YAML manifests, one file per object."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_argument(parser, "stack to plan", plan_file=True)
    parser.add_argument("--plan", metavar="FILE", help="render this preview-JSON file instead of planning")
    parser.add_argument("--out", metavar="DIR", required=True, help="output directory (manifests, not a report)")


def run(args: argparse.Namespace) -> int:
    from ..render import RenderError, write_manifests

    try:
        written = write_manifests(plan_from(args.plan, StackInput(stack_unless_plan(args))), args.out)
    except RenderError as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {len(written)} manifests to {terminal(args.out, 300)}")
    return EXIT_OK
