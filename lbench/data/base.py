"""Image classification sources: a pool (train) split and a test split, on one lazy item protocol.

A split (:class:`ImageSplit`) yields ``(image, label, index)``: ``image`` a float tensor
``[C, H, W]`` in ``[0, 1]`` loaded on demand, ``label`` the ground-truth class, ``index`` the
item's global index in the split (the pool index for the train split). Where an item comes from
is the implementation's business: a row of an in-memory array (:class:`ArraySplit`, for the small
sets), an image file opened with PIL (:class:`~lbench.data.files.FileSplit`), a record in an
archive. Every split also has:

- ``targets``: the ``[N]`` int64 ground truth (the simulated oracle's; never shown to strategies);
- ``item_id(i)``: a stable, human-readable identifier (a file path, ``fashion_mnist/train/123``);
- ``fingerprint``: how the split was chosen (data set, split, subset size, seed);
- ``manifest()`` and ``content_hash``: what the split holds (item ids, sizes, labels and digests
  of the source files; see :mod:`lbench.data.manifest`), cheap to compute at each start. It
  changes when the content or the subset changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lbench.data.manifest import digest_json, digest_strings, digest_tensor

__all__ = ["ArraySplit", "ImageSplit", "PoolDataset", "subset_indices"]

#: Version of the manifest layout: bump it when :meth:`ImageSplit.manifest` changes meaning.
MANIFEST_VERSION = 1


class ImageSplit(Dataset, ABC):
    """The item protocol of a split: ``split[i] -> (image, label, index)``, loaded on demand.

    Subclasses set ``name``, ``targets`` and ``fingerprint`` and implement :meth:`load_image`,
    :meth:`item_id` and :meth:`manifest`.

    For compatibility, ``ImageSplit(name, images, targets, ids=None, fingerprint=None)`` builds an
    :class:`ArraySplit` (the in-memory split this class used to be).

    Attributes:
        name: Short name, e.g. ``fashion_mnist-train``.
        targets: ``[N]`` int64 ground-truth labels.
        fingerprint: How the split was chosen (data set, split, subset, seed): JSON values.
    """

    name: str
    targets: Tensor
    fingerprint: dict[str, Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> ImageSplit:
        """Instantiate ``cls``; ``ImageSplit(...)`` itself builds an :class:`ArraySplit`."""
        return super().__new__(ArraySplit if cls is ImageSplit else cls)

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def __getitem__(self, i: int) -> tuple[Tensor, int, int]:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"{self.name} has {len(self)} items, no item {i}")
        return self.load_image(i), int(self.targets[i]), i

    @abstractmethod
    def load_image(self, i: int) -> Tensor:
        """Image ``i`` as a float tensor ``[C, H, W]`` in ``[0, 1]``.

        Raises:
            DataError: The item cannot be read (the message names it).
        """

    @abstractmethod
    def item_id(self, i: int) -> str:
        """Stable identifier of item ``i`` (its file path when it has one)."""

    @abstractmethod
    def manifest(self) -> dict[str, Any]:
        """A small JSON description of the content: item ids, sizes, labels, source digests.

        It must change whenever an item's pixels or label, or the set of items, changes, and be
        cheap to compute at each start (no decoding of every image).
        """

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 (16 hex) of :meth:`manifest`: changes when the content or the subset changes."""
        return digest_json({"manifest_version": MANIFEST_VERSION, **self.manifest()})


class ArraySplit(ImageSplit):
    """A split whose items are rows of a ``uint8`` array ``[M, C, H, W]`` (small data sets).

    The array may be given as a zero-argument loader, called on the first image access only,
    so opening a split (labels, ids, fingerprint, content hash) never decodes its images.

    Args:
        name: Short name, e.g. ``digits-train``.
        images: ``uint8 [M, C, H, W]`` tensor, or a callable returning one.
        targets: ``[N]`` labels of the split's items.
        ids: Optional identifiers, one per item (default ``<name>/<i>``).
        fingerprint: How the split was chosen.
        rows: Which rows of ``images`` are the split's items (default: all ``M``, ``N == M``);
            a subset indexes a shared array without copying it.
        sources: Digests of the files the array is read from (name -> digest, e.g.
            :func:`~lbench.data.manifest.file_sha256`). With them, the manifest holds these
            digests, ``rows`` and ``item_shape`` and never touches the pixels; without them it
            holds a digest of the split's pixels (fine for small in-memory arrays).
        item_shape: ``(C, H, W)`` of one item (required with ``sources``).

    Raises:
        ValueError: Shapes or dtypes do not agree.
    """

    def __init__(
        self,
        name: str,
        images: Tensor | Callable[[], Tensor],
        targets: Tensor,
        ids: Sequence[str] | None = None,
        fingerprint: dict[str, Any] | None = None,
        rows: Tensor | None = None,
        sources: Mapping[str, str] | None = None,
        item_shape: tuple[int, int, int] | None = None,
    ) -> None:
        self.name = name
        self.targets = torch.as_tensor(targets, dtype=torch.int64)
        self.ids = list(ids) if ids is not None else None
        self.fingerprint = dict(fingerprint or {})
        self.rows = None if rows is None else torch.as_tensor(rows, dtype=torch.int64)
        self.sources = dict(sources) if sources is not None else None
        self._array: Tensor | None = None
        self._loader: Callable[[], Tensor] | None = None
        if isinstance(images, Tensor):
            self._array = self._checked(images)
        else:
            self._loader = images
        if self.targets.dim() != 1:
            raise ValueError(f"targets must be [N], got {tuple(self.targets.shape)}")
        n = len(self.targets)
        if self.rows is not None and self.rows.shape != (n,):
            raise ValueError("rows must have one entry per label")
        if self.rows is None and self._array is not None and self._array.shape[0] != n:
            raise ValueError("targets must have one label per image")
        if self.ids is not None and len(self.ids) != n:
            raise ValueError(f"ids must have one entry per item, got {len(self.ids)} for {n}")
        if self.sources is not None and item_shape is None:
            raise ValueError("item_shape is required with sources")
        self.item_shape = tuple(item_shape) if item_shape is not None else None

    @staticmethod
    def _checked(images: Tensor) -> Tensor:
        if images.dim() != 4 or images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        return images

    def _rows_array(self) -> Tensor:
        if self._array is None:
            assert self._loader is not None
            self._array = self._checked(self._loader())
        return self._array

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the array when a loader can read it again (spawned workers reload it)."""
        state = dict(self.__dict__)
        if self._loader is not None:
            state["_array"] = None
        return state

    @property
    def images(self) -> Tensor:
        """The split's images, ``uint8 [N, C, H, W]`` (materialised: a copy for a subset)."""
        array = self._rows_array()
        return array if self.rows is None else array[self.rows]

    def load_image(self, i: int) -> Tensor:
        """Row ``i`` as a float ``[C, H, W]`` tensor in ``[0, 1]``."""
        row = i if self.rows is None else int(self.rows[i])
        return self._rows_array()[row].float().div_(255.0)

    def item_id(self, i: int) -> str:
        """``ids[i]``, or ``<name>/<i>``."""
        return self.ids[i] if self.ids is not None else f"{self.name}/{i}"

    def manifest(self) -> dict[str, Any]:
        """Item ids, labels, and source digests + rows (or a digest of the pixels)."""
        m: dict[str, Any] = {
            "kind": "array",
            "n": len(self),
            "ids": digest_strings(self.ids) if self.ids is not None else None,
            "targets": digest_tensor(self.targets),
        }
        if self.sources is not None:
            m["sources"] = self.sources
            m["rows"] = digest_tensor(self.rows) if self.rows is not None else None
            m["item_shape"] = list(self.item_shape or ())
        else:
            m["pixels"] = digest_tensor(self.images)
        return m


class PoolDataset(ABC):
    """A classification data set seen as a pool (train split) and a test split.

    Subclasses open their splits lazily (reading labels and a manifest, not every image) and
    raise :class:`lbench.errors.DataError` with an install hint when the data are missing.
    """

    #: Class names, in label order.
    class_names: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @abstractmethod
    def pool_split(self) -> ImageSplit:
        """The pool: items whose labels active learning acquires."""

    @abstractmethod
    def test_split(self) -> ImageSplit:
        """The held-out test split."""


def subset_indices(n: int, size: int | None, seed: int) -> Tensor:
    """Sorted random subset of ``range(n)`` of ``size`` items (all when ``size`` is None)."""
    if size is None or size >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:size].sort().values
