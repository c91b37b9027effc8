"""`modelops preflight`: what a stack needs of AWS (GPU capacity offerings, vCPU quotas, Lambda concurrency) and,
with a kubeconfig, of its cluster. Exit 1 when a check fails (warnings never fail), 2 for an unusable stack or
kubeconfig."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from typing import Any, TextIO

from ..common import EXIT_OK, EXIT_POLICY, UsageError, stack_settings, write_output
from .flags import add_json_alias, add_report_arguments, add_stack_argument, stack_of

HELP = (
    "Check GPU capacity offerings, vCPU quotas and Lambda concurrency for a stack and, with a kubeconfig, the "
    "cluster's prerequisites (served APIs, Gateway route acceptance, namespaces, the S3 CSI driver on GPU "
    "nodes, metrics-server, KEDA and Karpenter versions, the Prometheus that selects the stack's objects, Envoy "
    "Gateway's Backend for standby failover). "
    "Exit 1 when a check fails (warnings never fail), 2 for an unusable stack or kubeconfig."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_argument(parser)
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="the cluster to check (default: $KUBECONFIG; tokens, client certificates and exec plugins such as "
        "`aws eks get-token`)",
    )
    parser.add_argument("--context", help="kubeconfig context (default: its current context)")
    parser.add_argument(
        "--cluster-only", action="store_true", help="check the cluster only, not AWS capacity and quotas"
    )
    add_report_arguments(
        parser,
        ("text", "json"),
        out_help="where to write the report (default: - for stdout); with --format json the text report is also "
        "printed, on stdout when the JSON goes to a file, on stderr when it goes to stdout",
    )
    add_json_alias(parser)


def run(args: argparse.Namespace) -> int:
    settings = stack_settings(stack_of(args))
    cfg = settings.model
    text_to_file = args.format == "text" and args.out != "-"
    shown: TextIO = (
        io.StringIO() if text_to_file else sys.stderr if args.out == "-" and args.format == "json" else sys.stdout
    )
    result: dict[str, Any] = {}
    ok = True
    if not args.cluster_only:
        part, ok = _aws_preflight(settings, shown)
        result.update(part)
    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    on_cluster = cfg.gpu_pools or any(cfg.fallback(m) != "only" for m in cfg.models.values())
    if kubeconfig and on_cluster:
        part, cluster_ok = _cluster_preflight(settings, kubeconfig, args.context, shown)
        result.update(part)
        ok = ok and cluster_ok
    elif args.cluster_only:
        raise UsageError("--cluster-only needs --kubeconfig PATH (or KUBECONFIG) and a stack with cluster objects")
    if isinstance(shown, io.StringIO):
        write_output(shown.getvalue(), args.out)
    elif args.format == "json":
        write_output(json.dumps(result, indent=2) + "\n", args.out)
    return EXIT_OK if ok else EXIT_POLICY


def _aws_preflight(settings: Any, shown: TextIO) -> tuple[dict[str, Any], bool]:
    """GPU capacity and quotas, and Lambda's unreserved concurrency: the JSON part and whether it passed."""
    from composition.lambda_preflight import check_lambda_concurrency, format_lambda_check
    from composition.preflight import format_report, run_preflight

    from ..inert import terminal_lines

    report = run_preflight(settings.model)
    print(terminal_lines(format_report(report)), file=shown)  # AWS error messages are quoted in it
    lambdas = check_lambda_concurrency(settings.model, settings.stack)
    if lambdas is not None:
        print(terminal_lines(format_lambda_check(lambdas)), file=shown)
    result: dict[str, Any] = {
        "region": report.region,
        "skipped": report.skipped,
        "pools": {
            n: {"status": c.status, "problems": list(c.problems), "notes": list(c.notes)}
            for n, c in report.pools.items()
        },
    }
    if lambdas is not None:
        result["lambda"] = {"status": lambdas.status, "problems": list(lambdas.problems), "notes": list(lambdas.notes)}
    return result, report.ok and (lambdas is None or lambdas.status != "fail")


def _cluster_preflight(
    settings: Any, kubeconfig: str, context: str | None, shown: TextIO
) -> tuple[dict[str, Any], bool]:
    """The cluster's prerequisites. A kubeconfig modelops cannot use is exit 2; a cluster that cannot be read
    (unreachable, refusing, answering oddly) is a failed check, exit 1."""
    from ..cluster_preflight import check_cluster, format_cluster_report
    from ..kubeapi import ClusterApiError, KubeApi, printable
    from ..kubeconfig import KubeconfigError

    api = None
    try:
        api = KubeApi.from_kubeconfig(kubeconfig, context)
        cluster = check_cluster(settings.model, api)
    except KubeconfigError as exc:
        raise UsageError(f"cannot use the kubeconfig: {printable(str(exc), 2000)}") from None
    except ClusterApiError as exc:
        message = printable(str(exc), 2000)
        print(f"cluster {printable(api.server) if api else kubeconfig}: FAIL\n  - {message}", file=shown)
        return {"cluster": {"server": api.server if api else None, "problems": [message]}}, False
    print(format_cluster_report(cluster), file=shown)
    result = {
        "server": cluster.server,
        "problems": cluster.problems,
        "warnings": cluster.warnings,
        "passed": cluster.passed,
    }
    return {"cluster": result}, cluster.ok
