"""Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (IDX files, read with numpy).

Opening a split reads the labels and the IDX header and hashes the source files (once per
process, see :func:`~lbench.data.manifest.file_sha256`); the 60k images are decompressed on the
first image access only, so a run whose embeddings are cached never decodes them.
"""

from __future__ import annotations

import gzip
import zlib
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lbench.data.base import ArraySplit, PoolDataset, subset_indices
from lbench.data.manifest import file_sha256, read_once
from lbench.errors import DataError

__all__ = ["FashionMNIST", "read_idx"]

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_MAGIC = {2051: 3, 2049: 1}  # images [n, rows, cols], labels [n]


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file: images ``[n, rows, cols]`` uint8 or labels ``[n]`` uint8.

    The array is writable (it owns its buffer).

    Raises:
        DataError: The file is not a valid IDX file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        b = bytearray(zlib.decompress(raw, 31) if path.suffix == ".gz" else raw)
        shape = _header(bytes(b[:16]))
        count = int(np.prod(shape))
        offset = 4 + 4 * len(shape)
        if len(b) < offset + count:
            raise ValueError(f"{len(b) - offset} bytes of data, expected {count}")
        return np.frombuffer(b, np.uint8, count=count, offset=offset).reshape(shape)
    except (OSError, ValueError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from e


def _header(head: bytes) -> tuple[int, ...]:
    """Shape from the first bytes of an IDX file."""
    if len(head) < 8:
        raise ValueError("file too short")
    magic = int.from_bytes(head[0:4], "big")
    if magic not in _MAGIC:
        raise ValueError(f"bad magic number {magic}")
    return tuple(int.from_bytes(head[4 + 4 * k : 8 + 4 * k], "big") for k in range(_MAGIC[magic]))


def _peek_shape(path: Path) -> tuple[int, ...]:
    """Shape of an IDX file from its header (decompresses only the first block)."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            return _header(f.read(16))
    except (OSError, ValueError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from e


class FashionMNIST(PoolDataset):
    """Fashion-MNIST (60k train, 10k test, 28x28 grey, 10 classes).

    Items are rows of the decompressed IDX array (:class:`~lbench.data.base.ArraySplit`),
    identified as ``fashion_mnist/<split>/<position in the IDX file>``. The content hash comes
    from the digests of the four IDX files, the subset and the labels.

    Args:
        root: Folder holding the four IDX files (the Debian package installs them in
            ``/usr/share/datasets/fashion-mnist``).
        pool_size: Size of the random subset of the train split used as the pool (None = all 60k).
        test_size: Size of the random subset of the test split (None = all 10k).
        seed: Seed of both subsets.
    """

    class_names = (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    )  # fmt: skip

    def __init__(
        self,
        root: str = DEFAULT_ROOT,
        pool_size: int | None = 10000,
        test_size: int | None = None,
        seed: int = 0,
    ) -> None:
        for name, v in (("pool_size", pool_size), ("test_size", test_size)):
            if v is not None and v <= 0:
                raise DataError(f"FashionMNIST {name} must be positive, got {v}")
        self.root = root
        self.pool_size = pool_size
        self.test_size = test_size
        self.seed = seed

    def _split(self, split: str, size: int | None) -> ArraySplit:
        img_file, lab_file = _files(self.root, split)
        labels = _cached_idx(lab_file)
        shape = _peek_shape(img_file)
        if len(shape) != 3 or len(labels.shape) != 1 or shape[0] != len(labels):
            raise DataError(f"Fashion-MNIST files in {img_file.parent} disagree: {shape} images, {labels.shape} labels")
        idx = subset_indices(len(labels), size, self.seed)
        rows = idx.numpy()
        try:
            sources = {img_file.name: file_sha256(img_file), lab_file.name: file_sha256(lab_file)}
        except OSError as e:
            raise DataError(f"cannot read Fashion-MNIST file: {e}") from e
        return ArraySplit(
            name=f"fashion_mnist-{split}",
            images=partial(_images, img_file),
            targets=torch.from_numpy(labels[rows].astype(np.int64)),
            ids=[f"fashion_mnist/{split}/{i}" for i in rows.tolist()],  # position in the IDX file
            fingerprint={"dataset": "fashion_mnist", "split": split, "size": size, "seed": self.seed},
            rows=idx,
            sources=sources,
            item_shape=(1, shape[1], shape[2]),
        )

    def pool_split(self) -> ArraySplit:
        """The pool: a seeded subset of the 60k train images."""
        return self._split("train", self.pool_size)

    def test_split(self) -> ArraySplit:
        """The official test split (or a seeded subset of it)."""
        return self._split("test", self.test_size)


def _files(root: str, split: str) -> tuple[Path, Path]:
    folder = Path(root)
    img_file, lab_file = (folder / f for f in _FILES[split])
    if not img_file.exists() or not lab_file.exists():
        raise DataError(
            f"Fashion-MNIST not found in {folder} (need {img_file.name}, {lab_file.name}): "
            "install it with `apt-get install dataset-fashion-mnist` or set data.dataset.root"
        )
    return img_file, lab_file


def _cached_idx(path: Path) -> np.ndarray:
    """:func:`read_idx`, memoised per ``(path, size, mtime)`` in this process."""
    return read_once(path, _read_idx_at, "IDX file")


def _read_idx_at(path: str) -> np.ndarray:
    return read_idx(Path(path))


def _images(path: Path) -> Tensor:
    """All images of an IDX file as ``uint8 [n, 1, rows, cols]`` (memoised, shared by splits)."""
    images = _cached_idx(path)
    if images.ndim != 3:
        raise DataError(f"{path} holds {images.shape}, not [n, rows, cols] images")
    return torch.from_numpy(images).unsqueeze(1)
