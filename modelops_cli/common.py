"""What every `modelops` verb shares: exit codes, the usage error, reading and planning a stack, writing a
result. (The verbs and the command line both use it; neither imports the other for it.)"""

import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from .inert import terminal

EXIT_OK, EXIT_POLICY, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Reported on stderr, exit 2."""


STACK_NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,99}")
"""What the Pulumi CLI takes as a stack name ("alphanumeric, hyphens, underscores, or periods":
https://www.pulumi.com/docs/iac/concepts/stacks/#create-stack). It lands in file names, the PR comment's
marker and git worktrees: nothing else gets that far (nor a leading '-', which a command would read as an option)."""


def checked_stack_name(stack: str) -> str:
    if not STACK_NAME.fullmatch(stack) or stack in (".", ".."):
        raise UsageError(
            f"stack {terminal(stack, 120)!r}: not a stack name (letters, digits, '-', '_' and '.', at most 100)"
        )
    return stack


def stack_settings(stack: str, stack_file: str | None = None):
    from .stackfile import StackNotFound, load_stack, stack_name_of

    try:
        if stack_file:
            return load_stack(checked_stack_name(stack_name_of(Path(stack_file))), stack_file=Path(stack_file))
        return load_stack(checked_stack_name(stack))
    except StackNotFound as exc:
        raise UsageError(str(exc)) from None


def plan_stack(stack: str, preflight: bool = False, stack_file: str | None = None) -> dict[str, Any]:
    """Validate and plan a stack: the preview-JSON plan. Raises StackConfigError, UsageError."""
    return plan_settings(stack_settings(stack, stack_file), preflight)


def plan_settings(settings, preflight: bool = False) -> dict[str, Any]:
    """The plan of an already loaded and validated stack."""
    from .offline.engine import ProgramError, run_program

    try:
        return run_program(settings, preflight=preflight)
    except ProgramError as exc:
        raise UsageError(f"stack {settings.stack}: the program failed: {exc}") from None


def checked_destination(destination: str, within: Path | None = None) -> Path:
    """A file path a verb may write: not empty (which would name the working directory), and no symbolic link
    at it or at any directory on the way inside the working directory (a link planted in a checkout,
    `comment.md -> ~/.bashrc`, would otherwise be written through), or, for a path the program derives itself (a
    policy config of the checkout), inside `within` wherever the command runs from. Raises UsageError naming it."""
    if not destination.strip():
        raise UsageError("the output path is empty; name a file, or '-' for stdout")
    path = Path(destination)
    linked = symlink_on_the_way(path, within)
    if linked is not None:
        raise UsageError(
            f"cannot write {terminal(destination)}: {terminal(linked)} is a symbolic link; give the path without links"
        )
    if path.is_dir():
        raise UsageError(f"cannot write {terminal(destination)}: it is a directory")
    return path


def symlink_on_the_way(path: Path, within: Path | None = None) -> Path | None:
    """The first symbolic link at `path` or at a directory on the way to it that a checkout could have planted: those
    of a relative path, those inside the working directory of an absolute one, and those inside `within`."""
    planted = set(_inside_working_directory(path.parents))
    if within is not None:
        planted |= {p for p in path.parents if p == within or within in p.parents}
    for place in [*sorted(planted, key=lambda p: len(p.parts)), path]:
        if place.is_symlink():
            return place
    return None


def _inside_working_directory(parents) -> list[Path]:
    """The directories on the way that a checkout could have planted as links: those of a relative path, and
    those inside the working directory of an absolute one (a system's own links, such as macOS's /tmp, are
    the user's to name)."""
    here = Path.cwd()
    return [p for p in parents if not p.is_absolute() or here in p.parents]


def write_atomically(path: Path, text: str) -> None:
    """`text` into `path` through a temporary file beside it, renamed over it: a reader never sees half a
    file, a failed write leaves the old one, and a link put at `path` meanwhile is replaced, not followed.
    Only regular files: a device or a pipe is written in place."""
    if path.exists() and not path.is_file():
        # a device or a pipe (/dev/stdout, a FIFO): written in place; renaming over it would replace the device
        with path.open("w", encoding="utf-8") as handle:
            handle.write(text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name[:40]}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _mode_for(path: Path) -> int:
    """The file's own mode when it exists, else what `open` would give it (0666 less the umask): mkstemp's
    0600 would otherwise stick to every file written."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_output(text: str, destination: str | None) -> None:
    """Write a result to a file or stdout; a destination that cannot take it (a full disk, a read-only
    place, a directory, a symbolic link) is a usage error naming it, not a traceback."""
    try:
        if destination is None or destination == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            write_atomically(checked_destination(destination), text)
    except BrokenPipeError:
        raise
    except OSError as exc:
        where = terminal(destination) if destination not in (None, "-") else "to stdout"
        raise UsageError(f"cannot write {where}: {exc.strerror or exc}") from None
