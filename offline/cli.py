"""`modelops`: the offline verbs. Exit codes: 0 ok, 1 a mandatory policy failed, 2 usage or config error."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from components.config import StackConfigError

from .common import EXIT_OK, EXIT_USAGE, UsageError, checked_stack_name, plan_stack, write_output
from .inert import terminal


def cmd_plan(args: argparse.Namespace) -> int:
    from .plan import dumps
    from .tree import render_tree

    plan = plan_stack(args.stack, preflight=args.preflight, stack_file=args.stack_file)
    tree_out = sys.stderr if args.json == "-" else sys.stdout
    print(render_tree(plan), file=tree_out)
    if args.json:
        write_output(dumps(plan), args.json)
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from .schema import json_schema

    write_output(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n", args.out)
    return EXIT_OK


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors inert: "unrecognized arguments" quotes what was given as it was given, so
    an escape sequence or a line break in a stray argument would reach the terminal or the CI log raw."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {terminal(message, 500)}\n")


def _stack_name(value: str) -> str:
    """Every verb's --stack, checked as it is parsed: it names files (policies/config/<stack>.json), markers and
    git worktrees even when a verb is given plans instead of a stack."""
    try:
        return checked_stack_name(value)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _finite_number(value: str) -> float:
    """Every number a flag takes (`cost --budget`, `gate --wait`): NaN compares false with everything, so a NaN
    budget was never exceeded and a NaN wait passed its bounds check; infinities and 1e400 are no amounts either."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{terminal(value, 80)!r} is not a number") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{terminal(value, 80)!r} is not a finite number")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="modelops",
        description="Plan, check and compare modelops stacks without a cloud (exit codes: "
        "0 ok, 1 a mandatory policy or pre-flight check failed, 2 usage or config error).",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    plan = verb("plan", cmd_plan, "Evaluate a stack's program under the mock engine and print its resources.")
    plan.add_argument("--stack", default="dev", help="stack name (stacks/Pulumi.<stack>.yaml; default: dev)")
    plan.add_argument("--stack-file", metavar="PATH", help="plan this stack file instead (Pulumi.<stack>.yaml)")
    plan.add_argument("--json", metavar="PATH|-", help="also write the plan as `pulumi preview --json` JSON")
    plan.add_argument(
        "--preflight",
        action="store_true",
        help="let `auto` models ask AWS (credentials and AWS_ENDPOINT_URL from the environment)",
    )

    schema = verb("schema", cmd_schema, "Print the JSON Schema of stack files (stacks/schema.json).")
    schema.add_argument("--out", metavar="PATH|-", default="-", help="where to write it (default: stdout)")

    from . import verbs as analysis

    analysis.register(verb)
    for sub in verbs.choices.values():
        for action in sub._actions:
            if action.dest == "stack":
                action.type = _stack_name
            elif action.type is float:
                action.type = _finite_number
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (printed by _Parser.error) is exit 2 like any other; --help exits
        if exc.code in (0, None):
            raise
        return EXIT_USAGE
    try:
        return args.handler(args)
    except StackConfigError as exc:
        # problems quote keys and values from the stack file: one inert line each (offline/inert.py)
        for problem in exc.problems:
            print(terminal(problem), file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"modelops: {terminal(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # the reader went away (`modelops plan | head`): nothing more to say, and nothing to say it to
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stops the interpreter's own flush failing at exit
        return EXIT_OK
    finally:
        _close_event_loop()


def _close_event_loop() -> None:
    """Close the event loop the SDK's mock engine ran the program on. Left open, it is closed by the garbage
    collector at interpreter exit, after its file descriptors may be gone: an "Invalid file descriptor"
    traceback after a successful plan."""
    policy = asyncio.get_event_loop_policy()
    try:
        loop = policy.get_event_loop()
    except RuntimeError:  # no loop in this thread: nothing ran
        return
    if not loop.is_closed() and not loop.is_running():
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(loop), return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    policy.set_event_loop(None)


if __name__ == "__main__":
    sys.exit(main())
