"""Reading files regular and bounded: the program's project files (the weights lock, trusted keys) and everything
a `modelops` verb is given (plans, policy configs, kubeconfigs, stack files: modelops_cli/files.py uses this one;
the program never imports the CLI). A FIFO would hang the reader forever and a device (`/dev/zero`, a link to it
planted in a checkout) fill its memory: neither is read."""

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
        raise OSError(errno.EFBIG, f"larger than {_size(limit)}", str(path))
    return data


def _size(limit: int) -> str:
    return f"{limit // (1 << 20)} MiB" if limit % (1 << 20) == 0 else f"{limit:,} bytes"
