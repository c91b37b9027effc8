"""`modelops plan`: a stack's program evaluated under the mock engine, shown as a component tree or written as
`pulumi preview --json` JSON."""

from __future__ import annotations

import argparse
import sys

from ..common import EXIT_OK, plan_stack, write_output
from .flags import add_json_alias, add_report_arguments, add_stack_argument, stack_of

HELP = "Evaluate a stack's program under the mock engine and print its resources."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_argument(parser)
    parser.add_argument("--stack-file", metavar="PATH", help="plan this stack file instead (Pulumi.<stack>.yaml)")
    add_report_arguments(
        parser,
        ("tree", "json"),
        out_help="where to write it (default: - for stdout); with --format json the tree is also printed, "
        "on stdout when the JSON goes to a file, on stderr when it goes to stdout",
    )
    add_json_alias(parser)
    parser.add_argument(
        "--preflight",
        action="store_true",
        help="let `auto` models ask AWS (credentials and AWS_ENDPOINT_URL from the environment)",
    )


def run(args: argparse.Namespace) -> int:
    from ..offline.tree import render_tree
    from ..plan import dumps

    plan = plan_stack(stack_of(args), preflight=args.preflight, stack_file=args.stack_file)
    if args.format == "tree":
        write_output(render_tree(plan) + "\n", args.out)
        return EXIT_OK
    print(render_tree(plan), file=sys.stderr if args.out == "-" else sys.stdout)
    write_output(dumps(plan), args.out)
    return EXIT_OK
