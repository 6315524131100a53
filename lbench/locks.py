"""Advisory locks so that two lbench processes never write the same state.

A run directory is locked by ``run`` for its whole duration, a pool file's folder by ``select``
and ``label``, an embedding cache folder while it is built.

The lock itself is ``flock`` on the directory: the kernel drops it when the process dies, so a
``kill -9`` never leaves a lock behind, and it holds across processes on one machine and across
hosts on file systems whose ``flock`` is cluster-wide (NFSv4, Lustre, GPFS with locking on).
While it is held, a holder file ``.lbench.lock`` in the folder names the holder (pid, host,
command), so a refused process can say who is in the way. The holder file is removed on release;
one left by a killed process is stale (its flock is gone), is noticed and taken over, with a
one-line warning naming the dead holder.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from lbench.errors import ConfigError

__all__ = ["HOLDER_FILE", "LockedError", "holder_of", "locked_dir"]

HOLDER_FILE = ".lbench.lock"
"""Name of the file that names the lock's holder inside a locked folder."""


class LockedError(ConfigError):
    """Another process holds the lock."""


def _describe_self() -> str:
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:3]))
    return f"pid {os.getpid()} on host {socket.gethostname()} ({command or 'python'})"


def holder_of(folder: str | os.PathLike[str]) -> str | None:
    """Who holds (or, for a stale file, held) the lock of ``folder``, as written in its holder file; None if unknown."""
    try:
        text = (Path(folder) / HOLDER_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text.splitlines()[0] if text else None


@contextmanager
def locked_dir(folder: str | os.PathLike[str], what: str, hint: str) -> Iterator[None]:
    """Hold an exclusive lock on an existing folder for the duration of the block.

    Args:
        folder: The folder (must exist).
        what: What is locked, for the message (``"run directory checkpoints/default"``).
        hint: What the user can do (``"wait for it to finish or use another --out_dir"``).

    Raises:
        LockedError: Another process holds the lock (one line: what, who holds it, and the hint).
    """
    folder = Path(folder)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = holder_of(folder)
                by = f"lbench process ({who})" if who else "lbench process"
                raise LockedError(f"{what} is in use by another {by}; {hint}") from e
            raise
        holder = folder / HOLDER_FILE
        try:
            stale = holder_of(folder)
            if stale is not None:  # its writer died holding the lock (the kernel released the flock)
                warnings.warn(f"took over the lock of {what} from {stale}, which is no longer running", stacklevel=3)
            wrote = _write_holder(holder)
            try:
                yield
            finally:
                if wrote:
                    with suppress(OSError):
                        holder.unlink()
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _write_holder(path: Path) -> bool:
    """Write the holder file (best effort: a read-only folder is locked without one); True when written."""
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(_describe_self() + "\n")
    except OSError:
        return False
    return True
