"""What every `modelops` verb shares: exit codes, the usage error, reading and planning a stack, writing a
result. (The verbs and the command line both use it; neither imports the other for it.)"""

import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_POLICY, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Reported on stderr, exit 2."""


def stack_settings(stack: str, stack_file: str | None = None):
    from .stackfile import StackNotFound, load_stack, stack_name_of

    try:
        if stack_file:
            return load_stack(stack_name_of(Path(stack_file)), stack_file=Path(stack_file))
        return load_stack(stack)
    except StackNotFound as exc:
        raise UsageError(str(exc)) from None


def plan_stack(stack: str, preflight: bool = False, stack_file: str | None = None) -> dict[str, Any]:
    """Validate and plan a stack: the preview-JSON plan. Raises StackConfigError, UsageError."""
    return plan_settings(stack_settings(stack, stack_file), preflight)


def plan_settings(settings, preflight: bool = False) -> dict[str, Any]:
    """The plan of an already loaded and validated stack."""
    from .engine import ProgramError, run_program

    try:
        return run_program(settings, preflight=preflight)
    except ProgramError as exc:
        raise UsageError(f"stack {settings.stack}: the program failed: {exc}") from None


def write_output(text: str, destination: str | None) -> None:
    """Write a result to a file or stdout; a destination that cannot take it (a full disk, a read-only
    place, a directory) is a usage error naming it, not a traceback."""
    try:
        if destination is None or destination == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            Path(destination).parent.mkdir(parents=True, exist_ok=True)
            Path(destination).write_text(text)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise UsageError(
            f"cannot write {destination if destination not in (None, '-') else 'to stdout'}: " f"{exc.strerror or exc}"
        ) from None
