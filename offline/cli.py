"""`modelops`: the offline verbs. Exit codes: 0 ok, 1 a mandatory policy failed, 2 usage or config error."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable

from components.config import StackConfigError

from .common import EXIT_OK, EXIT_USAGE, UsageError, plan_stack, write_output
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
