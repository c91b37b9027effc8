"""Reading files of the project the program runs in (the weights lock, trusted keys): regular files only, and
bounded, as the CLI reads what it is given (modelops_cli/files.py; the program never imports the CLI). A FIFO
committed as `weights.lock.json` would hang every plan and a link to `/dev/zero` fill its memory: neither is read."""

import errno
import os
import stat
from pathlib import Path


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, else OSError with a strerror to print
    (FileNotFoundError when there is none, IsADirectoryError for a directory)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit:,} bytes", str(path))
    return data
