"""Atomic file writes: temp file in the same folder, fsync, rename.

A crash at any point leaves either the old file or the new one, never a torn file. The new file
gets the permissions of a normal file: those of the file it replaces, or ``0666`` minus the
user's umask for a new one (never the ``0600`` of a private temp file).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_write",
    "atomic_write_json",
    "atomic_write_text",
    "check_writable",
    "fsync_dir",
    "read_json",
    "remove_stale_temps",
]


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Write a file atomically.

    Args:
        path: Destination. Its folder is created if needed.
        write: Called with a binary file object open on a temp file in the same folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            if path.exists():  # keep the permissions the user gave the file it replaces
                os.fchmod(f.fileno(), path.stat().st_mode & 0o7777)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


_TEMP = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")


def remove_stale_temps(folder: str | os.PathLike[str], recursive: bool = True) -> int:
    """Delete the temp files that atomic writes interrupted by a crash left in ``folder``; returns how many.

    Only files named as :func:`atomic_write` names its temp files (``.NAME.<12 hex>.tmp``) are
    removed. Call it while holding the folder's lock (:mod:`lbench.locks`): then no other writer
    can be between its temp file and the rename.
    """
    root = Path(folder)
    if not root.is_dir():
        return 0
    found = root.rglob(".*.tmp") if recursive else root.glob(".*.tmp")
    removed = 0
    for p in found:
        if _TEMP.match(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            removed += 1
    return removed


def _create_temp(path: Path) -> tuple[int, Path]:
    """Create a new temp file next to ``path`` with mode ``0666 & ~umask`` (like ``open(..., "w")``)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue
    raise FileExistsError(f"could not create a temp file next to {path}")  # pragma: no cover


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename or a new file in it) to disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write text (UTF-8) atomically."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write an object as indented JSON atomically."""
    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file (no error translation; callers wrap errors with context)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def check_writable(path: str | os.PathLike[str], kind: str = "file") -> None:
    """Raise ConfigError unless ``path`` (a ``file`` or ``folder``, maybe not there yet) can be written.

    Checks the nearest existing ancestor, so the check itself creates nothing.
    """
    from lbench.errors import ConfigError

    p = Path(path).absolute()
    if p.exists() and p.is_dir() != (kind == "folder"):
        raise ConfigError(f"{path} must be a {kind}, but it is a {'folder' if p.is_dir() else 'file'}")
    ancestor = p if kind == "folder" and p.exists() else p.parent  # atomic writes need the folder writable
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"cannot write {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {path}: {ancestor} is not writable")
