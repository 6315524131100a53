"""``meta.json`` of a cache folder: the fingerprint, the views and their finished chunks, the statistics.

Layout (format ``lbench.EmbeddingCache/2``)::

    {"format": ..., "fingerprint": {...}, "items": N, "dim": D, "chunk_size": C,
     "views": {"plain": {"spec": {...}, "file": "plain.npy", "done": {"0": crc32, ...}}, ...},
     "stats": {"mean": [D floats], "std": [D floats]}}      # of the plain view, once complete

A chunk is rows ``[c * C, min((c + 1) * C, N))`` of a view; it is listed in ``done`` (with the
CRC-32 of its bytes) only after its values were checked finite and flushed to disk. Under DDP,
ranks other than 0 record their chunks in ``progress.rank<r>.json`` journals that rank 0 merges.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from lbench._io import atomic_write_json, read_json
from lbench.errors import CacheError

__all__ = ["FORMAT", "Meta", "fingerprint_key"]

FORMAT = "lbench.EmbeddingCache/2"
META = "meta.json"


def fingerprint_key(obj: Any, length: int = 16) -> str:
    """Hex SHA-256 of an object's canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:length]


def _differences(ours: dict[str, Any], theirs: Any) -> str:
    if not isinstance(theirs, dict):
        return "it has no fingerprint"
    keys = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    split, other = ours.get("split", {}), theirs.get("split") or {}
    if "split" in keys and isinstance(other, dict) and other.get("name") != split.get("name"):
        return f"it is for split {other.get('name')!r}, not {split.get('name')!r}"
    return f"its {', '.join(keys)} differ" if len(keys) > 1 else f"its {keys[0]} differs"


class Meta:
    """The parsed ``meta.json`` of one cache folder.

    Args:
        folder: The cache folder.
        data: The JSON content.
    """

    def __init__(self, folder: Path, data: dict[str, Any]) -> None:
        self.folder = folder
        self.data = data

    @classmethod
    def new(cls, folder: Path, fingerprint: dict[str, Any], items: int, dim: int, chunk_size: int) -> Meta:
        """An empty cache description."""
        data = {"format": FORMAT, "fingerprint": fingerprint, "items": items, "dim": dim,
                "chunk_size": chunk_size, "views": {}, "stats": None}  # fmt: skip
        return cls(folder, data)

    @classmethod
    def read(cls, folder: Path, fingerprint: dict[str, Any], dim: int) -> Meta | None:
        """Read and validate ``folder/meta.json``; None when the folder holds no cache yet.

        Raises:
            CacheError: meta.json is unreadable, malformed or describes another cache, or it is
                missing while store files are present.
        """
        path = folder / META
        if not path.exists():
            if folder.is_dir() and any(folder.glob("*.npy")):
                raise CacheError(f"cache folder {folder} has store files but no {META} (damaged or copied "
                                 f"in part); delete {folder} to rebuild it")  # fmt: skip
            return None
        try:
            data = read_json(path)
            views, chunk, items = data["views"], int(data["chunk_size"]), int(data["items"])
            for view in views.values():
                _ = view["file"], view["spec"], {int(c): int(crc) for c, crc in view["done"].items()}
            if chunk <= 0 or not isinstance(data.get("fingerprint"), dict):
                raise ValueError("bad chunk_size or fingerprint")
        except PermissionError as e:
            raise CacheError(f"cache file {path} cannot be read (permission denied); make it readable") from e
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise CacheError(f"cache file {path} is unreadable ({e}); delete {folder} to rebuild it") from e
        if data.get("format") != FORMAT or data["fingerprint"] != fingerprint:
            same_format = data.get("format") == FORMAT
            why = _differences(fingerprint, data["fingerprint"]) if same_format else "another cache format"
            raise CacheError(f"cache file {path} belongs to another cache ({why}); delete {folder} to rebuild it")
        if items != fingerprint["split"]["n"] or int(data["dim"]) != dim:
            raise CacheError(f"cache file {path} says {items} x {data['dim']} embeddings, expected "
                             f"{fingerprint['split']['n']} x {dim}; delete {folder} to rebuild it")  # fmt: skip
        return cls(folder, data)

    def write(self) -> None:
        """Write ``meta.json`` atomically."""
        atomic_write_json(self.folder / META, self.data)

    # -- layout ----------------------------------------------------------------------------
    @property
    def items(self) -> int:
        """Rows per view."""
        return int(self.data["items"])

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.data["dim"])

    @property
    def chunk_size(self) -> int:
        """Rows per chunk."""
        return int(self.data["chunk_size"])

    @property
    def num_chunks(self) -> int:
        """Chunks per view."""
        return math.ceil(self.items / self.chunk_size)

    def rows(self, chunk: int) -> tuple[int, int]:
        """``(start, stop)`` rows of a chunk."""
        return chunk * self.chunk_size, min((chunk + 1) * self.chunk_size, self.items)

    # -- views -----------------------------------------------------------------------------
    def has_view(self, stem: str) -> bool:
        """Whether the view is described."""
        return stem in self.data["views"]

    def add_view(self, stem: str, spec: dict[str, Any]) -> None:
        """Describe a new view (no chunk done)."""
        self.data["views"].setdefault(stem, {"spec": spec, "file": f"{stem}.npy", "done": {}})

    def path(self, stem: str) -> Path:
        """The view's ``.npy`` file."""
        return self.folder / self.data["views"][stem]["file"]

    def done(self, stem: str) -> dict[int, int]:
        """Finished chunks of a view: chunk -> CRC-32."""
        view = self.data["views"].get(stem)
        return {} if view is None else {int(c): int(crc) for c, crc in view["done"].items()}

    def missing(self, stem: str) -> list[int]:
        """Chunks of a view still to build."""
        done = self.done(stem)
        return [c for c in range(self.num_chunks) if c not in done]

    def mark_done(self, stem: str, chunk: int, crc: int) -> None:
        """Record a finished chunk."""
        done = self.data["views"][stem]["done"]
        done[str(chunk)] = crc
        self.data["views"][stem]["done"] = dict(sorted(done.items(), key=lambda kv: int(kv[0])))

    def is_complete(self, stems: list[str]) -> bool:
        """All chunks of these views are done and the statistics are stored."""
        return self.data.get("stats") is not None and all(self.has_view(s) and not self.missing(s) for s in stems)

    # -- DDP journals ----------------------------------------------------------------------
    def journal(self, rank: int) -> Path:
        """Where rank ``rank`` (> 0) records the chunks it finished."""
        return self.folder / f"progress.rank{rank}.json"

    def merge_journals(self) -> list[Path]:
        """Fold the chunks recorded in rank journals into this meta; return the journals read."""
        key = fingerprint_key(self.data["fingerprint"])
        paths = sorted(self.folder.glob("progress.rank*.json"))
        for path in paths:
            try:
                journal = read_json(path)
                entries = journal["views"] if journal.get("key") == key else {}
                for stem, done in entries.items():
                    for chunk, crc in done.items():
                        if self.has_view(stem) and 0 <= int(chunk) < self.num_chunks:
                            self.mark_done(stem, int(chunk), int(crc))
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                raise CacheError(f"cache file {path} is unreadable ({e}); delete it (its chunks are rebuilt)") from e
        return paths

    def write_journal(self, rank: int, done: dict[str, dict[int, int]]) -> None:
        """Record, for rank ``rank``, the chunks it finished (all of them, rewritten atomically)."""
        views = {stem: {str(c): crc for c, crc in sorted(chunks.items())} for stem, chunks in done.items()}
        atomic_write_json(self.journal(rank), {"key": fingerprint_key(self.data["fingerprint"]), "views": views})
