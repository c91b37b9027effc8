"""`modelops weights`: pin a stack's model weights in weights.lock.json, check them, or print one prefix's manifest
(modelops_cli/weights.py says how)."""

from __future__ import annotations

import argparse
import re

from ..common import (
    EXIT_OK,
    EXIT_POLICY,
    UsageError,
    checked_destination,
    stack_settings,
    write_atomically,
    write_output,
)
from ..inert import terminal
from .flags import add_stack_argument, stack_of

REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}")

HELP = (
    "Pin the stack's model weights by content: the SHA-256 of every file under each S3 prefix it serves, recorded "
    "in weights.lock.json and checked by the pods before serving (--check: exit 1 when S3 no longer matches)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_argument(parser)
    parser.add_argument(
        "--stack-file", metavar="PATH", help="pin this stack file's weights instead (Pulumi.<stack>.yaml)"
    )
    parser.add_argument("--model", action="append", default=[], metavar="NAME", help="only this model (repeatable)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare S3 with the lock instead of writing it (exit 1 when a pinned file changed, or a prefix is "
        "unpinned where modelops:security.requirePinnedWeights holds)",
    )
    parser.add_argument(
        "--print",
        metavar="S3_URI",
        dest="print_uri",
        help="print the manifest of one prefix as the JSON of a registered version's modelops.weights.manifest tag",
    )
    parser.add_argument("--region", help="the buckets' region (default: the stack's cluster region)")


def run(args: argparse.Namespace) -> int:
    from components.config.model import check_artifact_uri
    from composition.weights_lock import lock_path, read_weights_lock
    from composition.weights_signature import read_signing_keys

    from ..weights import (
        WeightsError,
        format_report,
        manifest_of,
        pin,
        s3_client,
        stack_locations,
        tag_value,
        updated_lock,
    )

    if args.region is not None and not REGION.fullmatch(args.region):
        raise UsageError(f"--region {terminal(args.region, 60)}: not an AWS region name (us-east-1, eu-west-2)")
    settings = stack_settings(stack_of(args), args.stack_file)
    region = args.region or settings.model.cluster.region
    try:
        if args.print_uri:
            if not args.print_uri.startswith("s3://"):
                raise UsageError(f"--print {args.print_uri[:200]!r}: give an s3://<bucket>/<prefix>")
            try:
                location = check_artifact_uri(args.print_uri.rstrip("/")) or ""
            except ValueError as exc:
                raise UsageError(f"--print: {exc}") from None
            write_output(tag_value(manifest_of(location, s3_client(region))) + "\n", "-")
            return EXIT_OK
        path = lock_path(settings.project.root)
        lock = read_weights_lock(path)
        served = stack_locations(settings.model, args.model)
        keys = read_signing_keys(settings.model.security.model_signing_keys, settings.project.root)
        pinned = pin(served, lock, s3_client(region), keys)
    except WeightsError as exc:
        raise UsageError(str(exc)) from None
    refused = [p.signature_problem for p in pinned if p.signature_problem]
    if refused and not args.check:  # nothing written: the lock never pins weights a signature does not cover
        raise UsageError("the weights are not signed as required:\n  " + "\n  ".join(refused))
    print(format_report(pinned, served.registered, args.check), end="")
    if args.check:  # an unpinned prefix fails only where pins (or signatures) are required
        required = settings.model.security.require_pinned_weights
        stale = any(
            p.signature_problem
            or ((p.changed_files or not p.signature_in_lock) if p.previous else required or p.location in served.signed)
            for p in pinned
        )
        return EXIT_POLICY if stale else EXIT_OK
    checked_destination(str(path))
    try:
        write_atomically(path, updated_lock(lock, pinned).as_json())
    except OSError as exc:
        raise UsageError(f"cannot write {terminal(str(path))}: {exc.strerror}") from None
    print(f"wrote {path} ({len(pinned)} prefix{'es' * (len(pinned) != 1)})")
    return EXIT_OK
