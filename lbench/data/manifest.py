"""Cheap content identities: file digests memoised per ``(path, size, mtime)`` and digests of values.

A split's ``content_hash`` comes from a small manifest (item ids, sizes, labels and digests of the
source files), never from hashing every decoded pixel at each start. Source files are hashed once
per process: :func:`file_sha256` memoises by ``(path, size, mtime_ns)``, so an edited or replaced
file gets a new digest and an unchanged one is not read again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from lbench.errors import DataError

__all__ = ["digest_json", "digest_strings", "digest_tensor", "file_sha256", "read_once"]

T = TypeVar("T")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (16 hex) of a file, computed once per process for each ``(path, size, mtime)``.

    Raises:
        OSError: The file cannot be read.
    """
    st = os.stat(path)
    return _file_sha256(os.path.abspath(os.fspath(path)), st.st_size, st.st_mtime_ns)


@cache
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def read_once(path: str | os.PathLike[str], reader: Callable[[str], T], what: str) -> T:
    """``reader(path)``, called once per process for each ``(path, size, mtime)`` (a data set's source files).

    ``reader`` must be a module-level function (it is part of the memo's key). An edited or
    replaced file is read again.

    Raises:
        DataError: The file cannot be found or read (``cannot read <what> <path>: ...``); whatever
            ``reader`` raises.
    """
    try:
        st = os.stat(path)
    except OSError as e:
        raise DataError(f"cannot read {what} {path}: {e}") from e
    return _read_once(reader, str(path), st.st_size, st.st_mtime_ns)


@cache
def _read_once(reader: Callable[[str], Any], path: str, size: int, mtime_ns: int) -> Any:
    return reader(path)


def digest_tensor(x: Tensor | np.ndarray) -> str:
    """SHA-256 (16 hex) of an array's dtype, shape and bytes."""
    a = x.detach().cpu().contiguous() if isinstance(x, Tensor) else np.ascontiguousarray(x)
    h = hashlib.sha256(f"{a.dtype}{tuple(a.shape)}".encode())
    if isinstance(a, Tensor):
        a = a.reshape(-1).view(torch.uint8).numpy()
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()[:16]


def digest_strings(items: Iterable[str]) -> str:
    """SHA-256 (16 hex) of strings, one per line (order matters)."""
    h = hashlib.sha256()
    for s in items:
        h.update(s.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def digest_json(value: Any) -> str:
    """SHA-256 (16 hex) of a JSON-serialisable value (keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]
