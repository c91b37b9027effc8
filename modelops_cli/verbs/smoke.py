"""`modelops smoke`: each deployed serverless fallback invoked with its sample payload, or (`--endpoints`) each
model on Kubernetes sent its runtime's sample request through the gateway. Exit 1 when one fails."""

from __future__ import annotations

import argparse

from ..common import EXIT_OK, EXIT_POLICY, stack_settings, write_output
from .flags import add_report_arguments, add_stack_argument, stack_of

HELP = (
    "Invoke each deployed serverless fallback with its sample payload, or (--endpoints) send each model on "
    "Kubernetes its runtime's sample request through the gateway."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_argument(parser)
    parser.add_argument("--endpoints", action="store_true", help="the Kubernetes endpoints, not the Lambda fallbacks")
    parser.add_argument(
        "--base-url", help="with --endpoints: the gateway's address (default: https://<gateway hostname>)"
    )
    add_report_arguments(parser, ("text",))


def run(args: argparse.Namespace) -> int:
    from ..smoke import format_results, passed, smoke, smoke_endpoints

    settings = stack_settings(stack_of(args))
    if args.endpoints:
        results = smoke_endpoints(settings.model, args.base_url)
    else:
        results = smoke(settings.model, settings.stack)
    write_output(format_results(results) + "\n", args.out)
    return EXIT_OK if passed(results) else EXIT_POLICY
