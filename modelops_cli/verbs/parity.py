"""`modelops parity`: the README's parity tables, from the policy pack's own rules and configs."""

from __future__ import annotations

import argparse

from ..common import EXIT_OK, write_output
from .flags import add_report_arguments

HELP = (
    "Print the README's parity tables: each Pod Security Standards and AWS control, the rule that implements it, "
    "its enforcement per environment."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_report_arguments(parser, ("markdown",))


def run(args: argparse.Namespace) -> int:
    from ..parity import parity_markdown

    write_output(parity_markdown(), args.out)
    return EXIT_OK
