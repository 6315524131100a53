"""Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (IDX files, read with numpy)."""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path

import numpy as np
import torch

from lbench.data.base import ImageSplit, PoolDataset, subset_indices
from lbench.errors import DataError

__all__ = ["FashionMNIST", "read_idx"]

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file: images ``[n, rows, cols]`` uint8 or labels ``[n]`` uint8.

    Raises:
        DataError: The file is not a valid IDX file.
    """
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            b = f.read()
        magic = int.from_bytes(b[0:4], "big")
        if magic == 2051:
            n, r, c = (int.from_bytes(b[i : i + 4], "big") for i in (4, 8, 12))
            return np.frombuffer(b, np.uint8, offset=16).reshape(n, r, c)
        if magic == 2049:
            n = int.from_bytes(b[4:8], "big")
            return np.frombuffer(b, np.uint8, offset=8).reshape(n)
        raise ValueError(f"bad magic number {magic}")
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from e


class FashionMNIST(PoolDataset):
    """Fashion-MNIST (60k train, 10k test, 28x28 grey, 10 classes).

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

    def _split(self, split: str, size: int | None) -> ImageSplit:
        images, labels = _load(self.root, split)
        idx = subset_indices(len(labels), size, self.seed)
        return ImageSplit(
            name=f"fashion_mnist-{split}",
            images=torch.from_numpy(images[idx.numpy()].copy()).unsqueeze(1),
            targets=torch.from_numpy(labels[idx.numpy()].astype(np.int64)),
            ids=[f"fashion_mnist/{split}/{i}" for i in idx.tolist()],  # position in the IDX file
            fingerprint={"dataset": "fashion_mnist", "split": split, "size": size, "seed": self.seed},
        )

    def pool_split(self) -> ImageSplit:
        """The pool: a seeded subset of the 60k train images."""
        return self._split("train", self.pool_size)

    def test_split(self) -> ImageSplit:
        """The official test split (or a seeded subset of it)."""
        return self._split("test", self.test_size)


@cache
def _load(root: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    folder = Path(root)
    img_file, lab_file = (folder / f for f in _FILES[split])
    if not img_file.exists() or not lab_file.exists():
        raise DataError(
            f"Fashion-MNIST not found in {folder} (need {img_file.name}, {lab_file.name}): "
            "install it with `apt-get install dataset-fashion-mnist` or set data.dataset.root"
        )
    images, labels = read_idx(img_file), read_idx(lab_file)
    if images.ndim != 3 or len(images) != len(labels):
        raise DataError(f"Fashion-MNIST files in {folder} disagree: {images.shape} images, {labels.shape} labels")
    return images, labels
