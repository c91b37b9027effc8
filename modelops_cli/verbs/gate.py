"""`modelops gate`: the image gate before `pulumi up` (modelops_cli/gate.py says what passes)."""

from __future__ import annotations

import argparse

from ..common import EXIT_OK, EXIT_POLICY, UsageError, plan_settings, stack_settings, write_output
from ..inert import terminal
from .flags import add_report_arguments, add_stack_argument, finite_number, stack_of

HELP = (
    "Before `pulumi up` of a stack that requires it (prod by default): every image it deploys has a completed "
    "ECR scan with no finding at or above modelops:security.maxImageSeverity and, where "
    "modelops:security.trustedSigningProfiles is set, an ECR managed signature by one of them (exit 1 otherwise)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_argument(parser)
    parser.add_argument("--stack-file", metavar="PATH", help="gate this stack file instead (Pulumi.<stack>.yaml)")
    add_report_arguments(
        parser,
        ("table", "json", "sarif"),
        out_help="where to write the report (default: - for stdout; a file also prints the table)",
    )
    parser.add_argument(
        "--wait",
        type=finite_number,
        default=0.0,
        metavar="SECONDS",
        help="ask again while a scan or signature is missing or running",
    )
    parser.add_argument(
        "--build-targets",
        action="store_true",
        help="print the URNs a targeted `pulumi up` pushes the stack's builds with (none when no gate is required)",
    )


def run(args: argparse.Namespace) -> int:
    from ..gate import build_targets, format_json, format_sarif, format_table, gate_plan

    if args.wait < 0 or args.wait > 3600:
        raise UsageError(f"--wait {args.wait:g}: give 0 to 3600 seconds")
    settings = stack_settings(stack_of(args), args.stack_file)
    cfg, stack = settings.model, settings.stack
    required = cfg.security.image_gate_required(cfg.environment)
    if args.build_targets:
        write_output("".join(f"{u}\n" for u in build_targets(plan_settings(settings))) if required else "", "-")
        return EXIT_OK
    if not required:
        print(
            f"image gate: not required for stack {terminal(stack)} (environment {cfg.environment}; "
            "modelops:security.requireImageGate turns it on)"
        )
        return EXIT_OK
    gate = gate_plan(cfg, plan_settings(settings), args.wait)
    artifact = args.stack_file or f"stacks/Pulumi.{stack}.yaml"
    text = {
        "table": lambda: format_table(gate, stack),
        "json": lambda: format_json(gate, stack),
        "sarif": lambda: format_sarif(gate, artifact),
    }[args.format]()
    write_output(text, args.out)
    if args.out != "-" and args.format != "table":
        print(format_table(gate, stack), end="")
    return EXIT_POLICY if gate.failed else EXIT_OK
