"""The flags every verb spells the same way, as the Pulumi CLI spells its own on every command
(https://www.pulumi.com/docs/iac/cli/commands/pulumi_preview/: `-s, --stack`):

- `-s/--stack NAME` on every verb that reads a stack, with one default rule (`stack_of`, `stack_unless_plan`): the stack named, else
  none when the verb is given a plan file instead (`--plan FILE`), else `dev`;
- `--format` and `--out PATH|-` on every verb that writes a report (`-`, the default, is stdout: stdout is data);
- `--json PATH|-`, the old spelling of `--format json --out PATH` on `plan` and `preflight`, kept for a release.

Values are checked as they are parsed: a bad one is argparse's usage error, exit 2."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import Any

from ..common import UsageError, checked_stack_name
from ..inert import terminal

DEFAULT_STACK = "dev"


def stack_name(value: str) -> str:
    """`--stack`, checked as it is parsed: it names files (policies/config/<stack>.json), markers and git
    worktrees even when a verb is given plans instead of a stack."""
    try:
        return checked_stack_name(value)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def finite_number(value: str) -> float:
    """Every number a flag takes (`cost --budget`, `gate --wait`): NaN compares false with everything, so a NaN
    budget was never exceeded and a NaN wait passed its bounds check; infinities and 1e400 are no amounts either."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{terminal(value, 80)!r} is not a number") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{terminal(value, 80)!r} is not a finite number")
    return number


def add_stack_argument(parser: argparse.ArgumentParser, what: str = "stack name", plan_file: bool = False) -> None:
    default = f"default: {DEFAULT_STACK}, or none with --plan FILE" if plan_file else f"default: {DEFAULT_STACK}"
    parser.add_argument("-s", "--stack", type=stack_name, help=f"{what} (stacks/Pulumi.<stack>.yaml; {default})")


def stack_of(args: argparse.Namespace) -> str:
    """The stack a verb reads: `--stack`, else `dev`."""
    return args.stack if args.stack is not None else DEFAULT_STACK


def stack_unless_plan(args: argparse.Namespace) -> str | None:
    """The same rule where a plan file may stand in for the stack: none when `--plan` is given and `--stack` is not."""
    return None if args.stack is None and args.plan else stack_of(args)


def add_report_arguments(parser: argparse.ArgumentParser, formats: Sequence[str], out_help: str = "") -> None:
    parser.add_argument(
        "--format", choices=formats, default=formats[0], help=f"the report's format (default: {formats[0]})"
    )
    parser.add_argument(
        "--out", metavar="PATH|-", default="-", help=out_help or "where to write the report (default: - for stdout)"
    )


class _JsonAlias(argparse.Action):
    """`--json PATH` sets exactly what `--format json --out PATH` sets."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: Any = None
    ) -> None:
        namespace.format, namespace.out = "json", values


def add_json_alias(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action=_JsonAlias,
        dest="json_alias",
        metavar="PATH|-",
        help="deprecated alias of --format json --out PATH|- (kept for one release)",
    )
