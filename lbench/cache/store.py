"""Store: a finished cache of one split, read view by view from read-only memory maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lbench.cache.files import checksum, nonfinite_rows, open_array
from lbench.cache.meta import Meta
from lbench.errors import CacheError

__all__ = ["Store"]


class Store:
    """The embeddings of one split under one encoder: ``num_views`` fp16 ``[N, D]`` views.

    View ``0`` is the plain view, then the recipe's weak views, then its strong views. A view's
    file is opened (and its chunks verified against the checksums taken when they were built)
    on first access only, so reading one view never touches the others.

    Args:
        meta: The cache's meta (complete for these views).
        names: View names in view order (``plain``, ``weak0`` ..., ``strong0`` ...).
        stems: File stem of each view.
        verify: Check each view's bytes (checksums, finite values) when it is first opened.
    """

    def __init__(self, meta: Meta, names: list[str], stems: list[str], verify: bool = True) -> None:
        self.meta = meta
        self.names = list(names)
        self.stems = list(stems)
        self.verify = verify
        self._views: dict[int, np.memmap] = {}
        stats = meta.data["stats"]
        self.mean: Tensor = torch.tensor(stats["mean"], dtype=torch.float32)
        self.std: Tensor = torch.tensor(stats["std"], dtype=torch.float32)

    @property
    def folder(self) -> Path:
        """The cache folder."""
        return self.meta.folder

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What determines the embeddings (split, encoder, precision, format)."""
        return self.meta.data["fingerprint"]

    @property
    def num_views(self) -> int:
        """Number of views (the plain one included)."""
        return len(self.names)

    @property
    def num_items(self) -> int:
        """Rows per view (items of the split)."""
        return self.meta.items

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return self.meta.dim

    def view_ids(self, kind: str) -> list[int]:
        """View numbers of a kind: ``plain`` ([0]), ``weak`` or ``strong``."""
        return [v for v, name in enumerate(self.names) if name.rstrip("0123456789") == kind]

    def path(self, v: int) -> Path:
        """The ``.npy`` file of view ``v``."""
        return self.meta.path(self.stems[self._check_index(v)])

    def nbytes(self) -> int:
        """Bytes on disk of this store's view files."""
        return sum(self.path(v).stat().st_size for v in range(self.num_views))

    def view(self, v: int) -> np.memmap:
        """View ``v`` as a read-only fp16 ``[N, D]`` memory map (verified on first access).

        Raises:
            CacheError: The file is damaged (cut, wrong dtype or shape, values changed since the build).
        """
        v = self._check_index(v)
        if v not in self._views:
            array = open_array(self.path(v), (self.num_items, self.dim))
            if self.verify:
                self._verify(v, array)
            self._views[v] = array
        return self._views[v]

    def _check_index(self, v: int) -> int:
        if not 0 <= v < self.num_views:
            raise IndexError(f"view {v} out of range: this store has {self.num_views} views ({', '.join(self.names)})")
        return v

    def _verify(self, v: int, array: np.memmap) -> None:
        done = self.meta.done(self.stems[v])
        for chunk in range(self.meta.num_chunks):
            a, b = self.meta.rows(chunk)
            rows = array[a:b]
            bad = np.flatnonzero(nonfinite_rows(rows))
            if len(bad):
                what = f"non-finite values (first at row {a + int(bad[0])})"
            elif checksum(rows) != done.get(chunk):
                what = "values that differ from the ones built"
            else:
                continue
            raise CacheError(f"cache file {self.path(v)} was damaged after it was built: view {self.names[v]} "
                             f"chunk {chunk} (rows {a}-{b - 1}) holds {what}; delete {self.folder} to rebuild "
                             "the cache")  # fmt: skip
