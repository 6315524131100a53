"""The fp16 ``.npy`` files of the cache: create with their space reserved, check before opening, verify.

A file is checked against its header before it is memory-mapped: a cut file is refused (numpy's
``r+`` mode would silently extend it with zeros), as are a wrong dtype, a wrong shape and extra
bytes. Reading maps the file read-only; only a build maps it for writing.
"""

from __future__ import annotations

import math
import os
import zlib
from pathlib import Path

import numpy as np

from lbench.errors import CacheError

__all__ = ["DTYPE", "checksum", "create", "nonfinite_rows", "open_array"]

#: Storage dtype of every view.
DTYPE = np.dtype(np.float16)


def _remedy(path: Path) -> str:
    return f"delete {path.parent} to rebuild the cache"


def _header(path: Path) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        return tuple(shape), bool(fortran), np.dtype(dtype), f.tell()


def check(path: Path, shape: tuple[int, int]) -> int:
    """Check a store file against the expected ``shape`` (fp16, C order, exact size); return its data offset.

    Raises:
        CacheError: The file is missing, unreadable, of another dtype or shape, cut or too long.
    """
    try:
        file_shape, fortran, dtype, offset = _header(path)
        size = path.stat().st_size
    except FileNotFoundError as e:
        raise CacheError(f"cache file {path} is missing; {_remedy(path)}") from e
    except PermissionError as e:
        raise CacheError(f"cache file {path} cannot be read (permission denied); make it readable") from e
    except (OSError, ValueError, EOFError) as e:
        raise CacheError(f"cache file {path} is unreadable ({e}); {_remedy(path)}") from e
    if dtype != DTYPE:
        raise CacheError(f"cache file {path} holds {dtype} values, expected {DTYPE}; {_remedy(path)}")
    if file_shape != shape or fortran:
        order = " (Fortran order)" if fortran else ""
        raise CacheError(f"cache file {path} has shape {file_shape}{order}, expected {shape}; {_remedy(path)}")
    expected = offset + math.prod(shape) * DTYPE.itemsize
    if size < expected:
        raise CacheError(f"cache file {path} is truncated ({size} bytes, expected {expected}); {_remedy(path)}")
    if size > expected:
        raise CacheError(f"cache file {path} has {size - expected} bytes after its data; {_remedy(path)}")
    return offset


def open_array(path: Path, shape: tuple[int, int], writable: bool = False) -> np.memmap:
    """Memory-map a checked store file (read-only unless ``writable``)."""
    offset = check(path, shape)
    try:
        return np.memmap(path, dtype=DTYPE, mode="r+" if writable else "r", offset=offset, shape=shape)
    except PermissionError as e:
        raise CacheError(f"cache file {path} is read-only; make its folder writable to complete the cache") from e
    except (OSError, ValueError) as e:
        raise CacheError(f"cache file {path} is unreadable ({e}); {_remedy(path)}") from e


def create(path: Path, shape: tuple[int, int]) -> None:
    """Create a zero-filled fp16 ``.npy`` of ``shape`` with its disk space reserved.

    The space is allocated now (``posix_fallocate``) so a full disk shows as an ``OSError`` here,
    never as a SIGBUS while writing through the memory map. The file appears under its name only
    once complete (temp file + rename).
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=DTYPE, shape=shape)
        del array
        with open(tmp, "r+b") as f:
            if hasattr(os, "posix_fallocate") and tmp.stat().st_size:
                os.posix_fallocate(f.fileno(), 0, tmp.stat().st_size)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def nonfinite_rows(values: np.ndarray) -> np.ndarray:
    """``[rows]`` bool: rows of an fp16 array holding a NaN or an infinity (exponent bits all set)."""
    bits = np.ascontiguousarray(values).view(np.uint16)
    return ((bits & 0x7C00) == 0x7C00).any(axis=-1)


def checksum(values: np.ndarray) -> int:
    """CRC-32 of the bytes of a C-contiguous block of rows."""
    return zlib.crc32(np.ascontiguousarray(values).data)
