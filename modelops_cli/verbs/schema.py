"""`modelops schema`: the JSON Schema of stack files (stacks/schema.json, for editors)."""

from __future__ import annotations

import argparse
import json

from ..common import EXIT_OK, write_output
from .flags import add_report_arguments

HELP = "Print the JSON Schema of stack files (stacks/schema.json)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_report_arguments(parser, ("json",), out_help="where to write it (default: - for stdout)")


def run(args: argparse.Namespace) -> int:
    from ..schema import json_schema

    write_output(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n", args.out)
    return EXIT_OK
