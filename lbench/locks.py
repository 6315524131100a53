"""Advisory locks so that two lbench processes never write the same state.

A run directory is locked by ``run`` for its whole duration, a pool file's folder by ``select``.
The lock is ``flock`` on the directory itself: no lock file is created (so a refused command
leaves the folder as it was), the kernel drops it when the process dies (``kill -9`` leaves no
stale lock), and it excludes processes on the same machine and on NFS-less shared disks.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lbench.errors import ConfigError

__all__ = ["LockedError", "locked_dir"]


class LockedError(ConfigError):
    """Another process holds the lock."""


@contextmanager
def locked_dir(folder: str | os.PathLike[str], what: str, hint: str) -> Iterator[None]:
    """Hold an exclusive lock on an existing folder for the duration of the block.

    Args:
        folder: The folder (must exist).
        what: What is locked, for the message (``"run directory checkpoints/default"``).
        hint: What the user can do (``"wait for it to finish or use another --out_dir"``).

    Raises:
        LockedError: Another process holds the lock (one line: what, and the hint).
    """
    fd = os.open(Path(folder), os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockedError(f"{what} is in use by another lbench process; {hint}") from e
            raise
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
