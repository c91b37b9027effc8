"""`modelops`: the command line (the verbs are modelops_cli/verbs/). Exit codes: 0 ok, 1 a mandatory policy failed, 2 usage or config error."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from types import ModuleType
from typing import NoReturn

from components.config import StackConfigError

from .common import EXIT_OK, EXIT_USAGE, UsageError
from .inert import terminal
from .verbs import (
    check,
    comment,
    cost,
    diff,
    gate,
    parity,
    plan,
    policy_config,
    preflight,
    render,
    schema,
    smoke,
    weights,
)


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors inert: "unrecognized arguments" quotes what was given as it was given, so
    an escape sequence or a line break in a stray argument would reach the terminal or the CI log raw."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {terminal(message, 500)}\n")


VERBS: dict[str, ModuleType] = {
    "plan": plan,
    "schema": schema,
    "check": check,
    "diff": diff,
    "cost": cost,
    "comment": comment,
    "render": render,
    "policy-config": policy_config,
    "parity": parity,
    "preflight": preflight,
    "smoke": smoke,
    "gate": gate,
    "weights": weights,
}
"""Every verb, in the order `modelops --help` lists them: a module of modelops_cli/verbs/ each."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="modelops",
        description="Plan, check and compare modelops stacks without a cloud (exit codes: "
        "0 ok, 1 a mandatory policy or pre-flight check failed, 2 usage or config error).",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, verb in VERBS.items():
        sub = verbs.add_parser(name, help=verb.HELP, description=verb.HELP)
        verb.add_arguments(sub)
        sub.set_defaults(handler=verb.run)
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
        # problems quote keys and values from the stack file: one inert line each (modelops_cli/inert.py)
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
