"""The analysis verbs of `modelops`: check, diff, comment, render, cost, smoke, preflight."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import (
    EXIT_OK,
    EXIT_POLICY,
    UsageError,
    checked_destination,
    plan_settings,
    stack_settings,
    write_output,
)
from .inert import terminal


def _settings(args: argparse.Namespace):
    """The `--stack` named by the arguments, read and validated once per command."""
    if getattr(args, "_settings", None) is None:
        args._settings = stack_settings(args.stack)
    return args._settings


def _plan_from(args: argparse.Namespace):
    """The plan a verb works on: `--plan FILE` (ours or the CLI's), else a fresh plan of `--stack`."""
    from .plan import PlanError, from_json, load_plan

    if getattr(args, "plan", None):
        try:
            return load_plan(args.plan)
        except PlanError as exc:
            raise UsageError(str(exc)) from None
    if not getattr(args, "stack", None):
        raise UsageError("give --stack NAME or --plan FILE")
    return from_json(plan_settings(_settings(args)), f"stack {args.stack}")


def policy_config_path(args: argparse.Namespace) -> Path:
    """`--policy-config`, else policies/config/<stack>.json, else the one of the stack's environment."""
    from .check import POLICIES_DIR

    if getattr(args, "policy_config", None):
        return Path(args.policy_config)
    if not getattr(args, "stack", None):
        raise UsageError("--plan needs --policy-config FILE (e.g. policies/config/prod.json)")
    by_stack = POLICIES_DIR / "config" / f"{args.stack}.json"
    if by_stack.exists():
        return by_stack
    return POLICIES_DIR / "config" / f"{_settings(args).model.environment}.json"


def check_plan(plan, args: argparse.Namespace):
    """The policy report of `plan` under the policy config the arguments name."""
    from .check import PolicyConfigError, load_policy_config, run_checks

    try:
        return run_checks(plan, load_policy_config(policy_config_path(args)))
    except PolicyConfigError as exc:
        raise UsageError(_config_problems("policy config: ", exc)) from None


def _config_problems(prefix: str, exc) -> str:
    """A validator's problems, each bounded: they quote the file's values, which may be a megabyte long."""
    return prefix + "; ".join(terminal(problem, 300) for problem in exc.problems[:20])


def cmd_check(args: argparse.Namespace) -> int:
    from . import report as formats

    report = check_plan(_plan_from(args), args)
    artifact = args.plan or f"stacks/Pulumi.{args.stack}.yaml"
    text = {
        "table": lambda: formats.format_table(report) + "\n",
        "json": lambda: formats.format_json(report),
        "markdown": lambda: formats.format_markdown(report),
        "sarif": lambda: formats.format_sarif(report, artifact),
    }[args.format]()
    write_output(text, args.out)
    return EXIT_POLICY if report.mandatory_failures else EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from . import diff
    from .plan import PlanError, load_plan

    if len(args.plans) > 2:
        raise UsageError(f"diff takes one plan or two (BASE HEAD), not {len(args.plans)}")
    try:
        plans = [load_plan(p) for p in args.plans]
    except PlanError as exc:
        raise UsageError(str(exc)) from None
    result = diff.diff_plans(*plans) if len(plans) == 2 else diff.diff_steps(plans[0])
    text = {
        "text": lambda: diff.format_text(result),
        "markdown": lambda: diff.format_markdown(result),
        "json": lambda: json.dumps(diff.to_json(result), indent=2) + "\n",
    }[args.format]()
    write_output(text, args.out)
    # A real preview fails on a protected resource's delete or replace: so does the diff.
    return EXIT_POLICY if result.refused else EXIT_OK


def _budget_and_region(args: argparse.Namespace) -> tuple[str, float | None]:
    if getattr(args, "stack", None):
        model = _settings(args).model
        return (
            args.region or model.cluster.region,
            args.budget if args.budget is not None else model.budget.monthly_gpu_usd,
        )
    return args.region or "us-east-1", args.budget


def cmd_cost(args: argparse.Namespace) -> int:
    from . import cost

    region, budget = _budget_and_region(args)
    report = cost.estimate(_plan_from(args), region, budget)
    write_output(cost.format_json(report) if args.format == "json" else cost.format_text(report), args.out)
    return EXIT_OK


def cmd_comment(args: argparse.Namespace) -> int:
    from . import comment
    from .plan import PlanError, from_json, load_plan

    try:
        if args.base_plan:
            base = load_plan(args.base_plan)
        elif args.base:
            base = from_json(comment.plan_at_revision(args.base, args.stack), f"{args.stack}@{args.base}")
        else:
            raise UsageError("give --base REF or --base-plan FILE")
        head = (
            load_plan(args.head_plan)
            if args.head_plan
            else from_json(plan_settings(_settings(args)), f"stack {args.stack}")
        )
    except (PlanError, comment.BaseRevisionError) as exc:
        raise UsageError(str(exc)) from None
    report = check_plan(head, args)
    region, budget = _budget_and_region(args)
    write_output(comment.render_comment(args.stack, base, head, report, region, budget), args.out)
    return EXIT_POLICY if report.mandatory_failures else EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    from .render import RenderError, write_manifests

    try:
        written = write_manifests(_plan_from(args), args.out)
    except RenderError as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {len(written)} manifests to {terminal(args.out, 300)}")
    return EXIT_OK


def cmd_smoke(args: argparse.Namespace) -> int:
    from .smoke import format_results, passed, smoke, smoke_endpoints

    settings = _settings(args)
    if args.endpoints:
        results = smoke_endpoints(settings.model, args.base_url)
    else:
        results = smoke(settings.model, settings.stack)
    print(format_results(results))
    return EXIT_OK if passed(results) else EXIT_POLICY


def cmd_policy_config(args: argparse.Namespace) -> int:
    from . import policy_config
    from .check import POLICIES_DIR, PolicyConfigError, load_policy_config, resolve

    settings = _settings(args)
    path = POLICIES_DIR / "config" / f"{settings.stack}.json"
    try:  # what is kept of the file is validated as `check` validates it, before anything is merged into it
        current = load_policy_config(path) if path.exists() or path.is_symlink() else {}
        resolve(current)
    except PolicyConfigError as exc:
        raise UsageError(_config_problems(f"{path}: ", exc)) from None
    updated = policy_config.merged(current, settings.model)
    try:  # and so is what would be written: never a file the pack refuses
        resolve(updated)
    except PolicyConfigError as exc:
        raise UsageError(
            _config_problems(f"the settings of stack {settings.stack} make a config the pack refuses: ", exc)
        ) from None
    text = policy_config.dumps(updated)
    if args.write:
        # the checkout's own file: no link on the way inside the checkout, from whichever directory this runs
        checked_destination(str(path), within=POLICIES_DIR.parent)
        write_output(text, str(path))
        print(f"wrote {path}")
        return EXIT_OK
    write_output(text, "-")
    return EXIT_OK


def _aws_preflight(args: argparse.Namespace, settings) -> tuple[dict, bool]:
    """GPU capacity and quotas, and Lambda's unreserved concurrency: the JSON part and whether it passed."""
    from composition.lambda_preflight import check_lambda_concurrency, format_lambda_check
    from composition.preflight import format_report, run_preflight

    from .inert import terminal_lines

    report = run_preflight(settings.model)
    print(terminal_lines(format_report(report)))  # AWS error messages are quoted in it
    lambdas = check_lambda_concurrency(settings.model, settings.stack)
    if lambdas is not None:
        print(terminal_lines(format_lambda_check(lambdas)))
    result: dict = {
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


def _cluster_preflight(args: argparse.Namespace, settings, kubeconfig: str) -> tuple[dict, bool]:
    """The cluster's prerequisites. A kubeconfig modelops cannot use is exit 2; a cluster that cannot be read
    (unreachable, refusing, answering oddly) is a failed check, exit 1."""
    from .cluster_preflight import check_cluster, format_cluster_report
    from .kubeapi import ClusterApiError, KubeApi, printable
    from .kubeconfig import KubeconfigError

    api = None
    try:
        api = KubeApi.from_kubeconfig(kubeconfig, args.context)
        cluster = check_cluster(settings.model, api)
    except KubeconfigError as exc:
        raise UsageError(f"cannot use the kubeconfig: {printable(str(exc), 2000)}") from None
    except ClusterApiError as exc:
        message = printable(str(exc), 2000)
        print(f"cluster {printable(api.server) if api else kubeconfig}: FAIL\n  - {message}")
        return {"cluster": {"server": api.server if api else None, "problems": [message]}}, False
    print(format_cluster_report(cluster))
    result = {
        "server": cluster.server,
        "problems": cluster.problems,
        "warnings": cluster.warnings,
        "passed": cluster.passed,
    }
    return {"cluster": result}, cluster.ok


def cmd_preflight(args: argparse.Namespace) -> int:
    import os

    settings = _settings(args)
    cfg = settings.model
    result: dict = {}
    ok = True
    if not args.cluster_only:
        part, ok = _aws_preflight(args, settings)
        result.update(part)
    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    on_cluster = cfg.gpu_pools or any(cfg.fallback(m) != "only" for m in cfg.models.values())
    if kubeconfig and on_cluster:
        part, cluster_ok = _cluster_preflight(args, settings, kubeconfig)
        result.update(part)
        ok = ok and cluster_ok
    elif args.cluster_only:
        raise UsageError("--cluster-only needs --kubeconfig PATH (or KUBECONFIG) and a stack with cluster objects")
    if args.json:
        write_output(json.dumps(result, indent=2) + "\n", args.json)
    return EXIT_OK if ok else EXIT_POLICY


def cmd_parity(args: argparse.Namespace) -> int:
    from .parity import parity_markdown

    write_output(parity_markdown(), args.out)
    return EXIT_OK


def register(verb) -> None:
    check = verb(
        "check",
        cmd_check,
        "Run the policy pack over a stack's plan or any preview-JSON file " "(exit 1 when a mandatory rule fails).",
    )
    check.add_argument(
        "--stack", default=None, help="stack to plan and check (policy config: policies/config/<stack>.json)"
    )
    check.add_argument("--plan", metavar="FILE", help="check this preview-JSON file (ours or `pulumi preview --json`)")
    check.add_argument("--policy-config", metavar="FILE", help="a --policy-pack-config JSON file")
    check.add_argument("--format", choices=["table", "json", "markdown", "sarif"], default="table")
    check.add_argument("--out", metavar="PATH|-", default="-", help="where to write the report (default: stdout)")

    diff = verb("diff", cmd_diff, "Compare two preview-JSON plans (BASE HEAD), or list one plan's own steps.")
    diff.add_argument("plans", nargs="+", metavar="PLAN.json", help="one plan, or BASE.json HEAD.json")
    diff.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    diff.add_argument("--out", metavar="PATH|-", default="-")

    cost = verb(
        "cost",
        cmd_cost,
        "Monthly GPU ceiling, expected cost at min replicas and serverless cap, " "against the budget.",
    )
    cost.add_argument("--stack", default=None, help="stack to plan (budget and region from its config)")
    cost.add_argument("--plan", metavar="FILE", help="price this preview-JSON file instead")
    cost.add_argument("--region", help="price list region (default: the stack's, else us-east-1)")
    cost.add_argument("--budget", type=float, help="monthly GPU budget in USD (default: modelops:budget)")
    cost.add_argument("--format", choices=["text", "json"], default="text")
    cost.add_argument("--out", metavar="PATH|-", default="-")

    comment = verb(
        "comment",
        cmd_comment,
        "The pull-request comment for one stack: changes against a base, "
        "policy verdicts and the cost ceiling before and after (exit 1 on a mandatory failure).",
    )
    comment.add_argument("--stack", required=True, help="stack name")
    comment.add_argument("--base", metavar="REF", help="git revision to compare with (e.g. origin/main)")
    comment.add_argument("--base-plan", metavar="FILE", help="or a preview-JSON file of the base")
    comment.add_argument("--head-plan", metavar="FILE", help="the head plan (default: plan the working tree)")
    comment.add_argument("--policy-config", metavar="FILE", help="default: policies/config/<stack>.json")
    comment.add_argument("--region", help=argparse.SUPPRESS)
    comment.add_argument("--budget", type=float, help=argparse.SUPPRESS)
    comment.add_argument("--out", metavar="PATH|-", default="-")

    render = verb("render", cmd_render, "Write a plan's Kubernetes objects as YAML manifests, one file per object.")
    render.add_argument("--stack", default="dev", help="stack to plan (default: dev)")
    render.add_argument("--plan", metavar="FILE", help="render this preview-JSON file instead of planning")
    render.add_argument("--out", metavar="DIR", required=True, help="output directory")

    policy = verb(
        "policy-config",
        cmd_policy_config,
        "Print (or --write) a stack's policy-pack config with the "
        "settings its stack file decides: registries, repository prefix, GPU budget and region.",
    )
    policy.add_argument("--stack", default="dev", help="stack name (default: dev)")
    policy.add_argument("--write", action="store_true", help="update policies/config/<stack>.json in place")

    parity = verb(
        "parity",
        cmd_parity,
        "Print the README's parity tables: each Pod Security Standards and AWS "
        "control, the rule that implements it, its enforcement per environment.",
    )
    parity.add_argument("--out", metavar="PATH|-", default="-")

    pre = verb(
        "preflight",
        cmd_preflight,
        "Check GPU capacity offerings, vCPU quotas and Lambda concurrency for a stack and, with a kubeconfig, the "
        "cluster's prerequisites (served APIs, Gateway route acceptance, namespaces, the S3 CSI driver on GPU "
        "nodes, metrics-server, KEDA and Karpenter versions, the Prometheus that selects the stack's objects). "
        "Exit 1 when a check fails (warnings never fail), 2 for an unusable stack or kubeconfig.",
    )
    pre.add_argument("--stack", default="dev", help="stack name (default: dev)")
    pre.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="the cluster to check (default: $KUBECONFIG; tokens, client certificates and exec plugins such as "
        "`aws eks get-token`)",
    )
    pre.add_argument("--context", help="kubeconfig context (default: its current context)")
    pre.add_argument("--cluster-only", action="store_true", help="check the cluster only, not AWS capacity and quotas")
    pre.add_argument("--json", metavar="PATH|-", help="also write the report as JSON")

    smoke = verb(
        "smoke",
        cmd_smoke,
        "Invoke each deployed serverless fallback with its sample payload, or (--endpoints) send each model on "
        "Kubernetes its runtime's sample request through the gateway.",
    )
    smoke.add_argument("--stack", default="dev", help="stack name (default: dev)")
    smoke.add_argument("--endpoints", action="store_true", help="the Kubernetes endpoints, not the Lambda fallbacks")
    smoke.add_argument(
        "--base-url", help="with --endpoints: the gateway's address (default: https://<gateway hostname>)"
    )

    from . import gate

    gate.add_arguments(
        verb(
            "gate",
            gate.run,
            "Before `pulumi up` of a stack that requires it (prod by default): every image it deploys has a "
            "completed ECR scan with no finding at or above modelops:security.maxImageSeverity (exit 1 otherwise).",
        )
    )
