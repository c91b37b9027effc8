"""`modelops`: the offline verbs. Exit codes: 0 ok, 1 a mandatory policy failed, 2 usage or config error."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from components.config import StackConfigError

from .common import EXIT_OK, EXIT_POLICY, EXIT_USAGE, UsageError, plan_stack, stack_settings, write_output


def cmd_plan(args: argparse.Namespace) -> int:
    from .plan import dumps
    from .tree import render_tree

    plan = plan_stack(args.stack, preflight=args.preflight, stack_file=args.stack_file)
    tree_out = sys.stderr if args.json == "-" else sys.stdout
    print(render_tree(plan), file=tree_out)
    if args.json:
        write_output(dumps(plan), args.json)
    return EXIT_OK


def cmd_preflight(args: argparse.Namespace) -> int:
    from composition.preflight import format_report, run_preflight

    from .cluster_preflight import KubeApi, KubeconfigError, check_cluster, format_cluster_report

    settings = stack_settings(args.stack)
    report = None
    if not args.cluster_only:
        report = run_preflight(settings.model)
        print(format_report(report))
    cluster = None
    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    cfg = settings.model
    if kubeconfig and (cfg.gpu_pools or any(cfg.fallback(m) != "only" for m in cfg.models.values())):
        try:
            cluster = check_cluster(settings.model, KubeApi(Path(kubeconfig), args.context))
        except KubeconfigError as exc:
            raise UsageError(f"cannot use the kubeconfig: {exc}") from None
        except OSError as exc:
            raise UsageError(f"cannot reach the cluster's API server: {exc}") from None
        print(format_cluster_report(cluster))
    elif args.cluster_only:
        raise UsageError("--cluster-only needs --kubeconfig PATH (or KUBECONFIG) and a stack with cluster objects")
    if args.json:
        write_output(
            json.dumps(
                {
                    **(
                        {
                            "region": report.region,
                            "skipped": report.skipped,
                            "pools": {
                                n: {"status": c.status, "problems": list(c.problems), "notes": list(c.notes)}
                                for n, c in report.pools.items()
                            },
                        }
                        if report
                        else {}
                    ),
                    **(
                        {"cluster": {"server": cluster.server, "problems": cluster.problems, "passed": cluster.passed}}
                        if cluster
                        else {}
                    ),
                },
                indent=2,
            )
            + "\n",
            args.json,
        )
    ok = (report is None or report.ok) and (cluster is None or cluster.ok)
    return EXIT_OK if ok else EXIT_POLICY


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

    pre = verb(
        "preflight",
        cmd_preflight,
        "Check GPU capacity offerings and vCPU quotas for a stack's pools and, with a kubeconfig, the cluster's "
        "prerequisites (served APIs, the Gateway, namespaces, the Prometheus that selects the stack's labels).",
    )
    pre.add_argument("--stack", default="dev", help="stack name (default: dev)")
    pre.add_argument("--kubeconfig", metavar="PATH", help="the cluster to check (default: $KUBECONFIG)")
    pre.add_argument("--context", help="kubeconfig context (default: its current context)")
    pre.add_argument("--cluster-only", action="store_true", help="check the cluster only, not AWS capacity and quotas")
    pre.add_argument("--json", metavar="PATH|-", help="also write the report as JSON")

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
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"modelops: {exc}", file=sys.stderr)
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
