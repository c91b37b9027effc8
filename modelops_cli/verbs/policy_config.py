"""`modelops policy-config`: a stack's policy-pack config with the settings its stack file decides."""

from __future__ import annotations

import argparse

from ..common import EXIT_OK, UsageError, checked_destination, stack_settings, write_output
from .flags import add_stack_argument, stack_of
from .inputs import config_problems

HELP = (
    "Print (or --write) a stack's policy-pack config with the settings its stack file decides: registries, "
    "repository prefix, GPU budget and region."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_argument(parser)
    parser.add_argument("--write", action="store_true", help="update policies/config/<stack>.json in place")


def run(args: argparse.Namespace) -> int:
    from .. import policy_config
    from ..check import POLICIES_DIR, load_policy_config, resolve
    from ..policy_config import PolicyConfigError

    settings = stack_settings(stack_of(args))
    path = POLICIES_DIR / "config" / f"{settings.stack}.json"
    try:  # what is kept of the file is validated as `check` validates it, before anything is merged into it
        current = load_policy_config(path) if path.exists() or path.is_symlink() else {}
        resolve(current)
    except PolicyConfigError as exc:
        raise UsageError(config_problems(f"{path}: ", exc)) from None
    updated = policy_config.merged(current, settings.model)
    try:  # and so is what would be written: never a file the pack refuses
        resolve(updated)
    except PolicyConfigError as exc:
        raise UsageError(
            config_problems(f"the settings of stack {settings.stack} make a config the pack refuses: ", exc)
        ) from None
    text = policy_config.dumps(updated)
    if not args.write:
        write_output(text, "-")
        return EXIT_OK
    # the checkout's own file: no link on the way inside the checkout, from whichever directory this runs
    checked_destination(str(path), within=POLICIES_DIR.parent)
    write_output(text, str(path))
    print(f"wrote {path}")
    return EXIT_OK
