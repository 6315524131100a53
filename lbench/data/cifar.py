"""CIFAR-10 and CIFAR-100 from torchvision's on-disk format (the python pickle batches).

Layout under ``root`` (what ``torchvision.datasets.CIFAR10/100(root, download=True)`` writes, and
what the tarballs at https://www.cs.toronto.edu/~kriz/cifar.html unpack to)::

    <root>/cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch, batches.meta
    <root>/cifar-100-python/train, test, meta          (fine labels: 100 classes)

Opening a split unpickles its batch files once per process (memoised per path, size and mtime: the
arrays are 180 MB at most) and hashes them for the manifest; items are rows of that array, turned
into float tensors on access (:class:`~lbench.data.base.ArraySplit`).

Test split conventions (``test_part``):

- ``all``: the official 10,000-image test set;
- ``val`` / ``test``: LabelBench's halves of it: ``numpy.random.RandomState(split_seed)``
  permutes the 10,000 indices, the first ``n - ceil(n/2)`` are validation and the last
  ``ceil(n/2)`` test (5,000 / 5,000; ``split_seed`` 42 is LabelBench's). The paper's test accuracies
  are on ``test``; ``val`` is the held-out set for tuning hyper-parameters.
"""

from __future__ import annotations

import pickle
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from lbench.data.base import ArraySplit, PoolDataset, subset_indices
from lbench.data.manifest import file_sha256, read_once
from lbench.errors import DataError

__all__ = ["CIFAR10", "CIFAR100", "TestPart", "labelbench_halves"]

#: Which part of an official test set is the test split: all of it, or LabelBench's val/test halves.
TestPart = Literal["all", "val", "test"]

CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish",
    "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange",
    "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip


def labelbench_halves(n: int, part: TestPart, seed: int = 42) -> np.ndarray | None:
    """Rows of an ``n``-item test set that ``part`` keeps (None for ``all``), as LabelBench splits CIFAR.

    ``RandomState(seed).permutation(n)``; validation is the first ``n - ceil(n/2)``, test the rest.
    """
    if part == "all":
        return None
    if part not in ("val", "test"):
        raise DataError(f"test_part must be all, val or test, got {part!r}")
    idx = np.random.RandomState(seed).permutation(n)
    half = -(-n // 2)
    return np.sort(idx[: n - half] if part == "val" else idx[n - half :])


class _CIFAR(PoolDataset):
    """CIFAR-10/100 (32x32 RGB): see the module docstring."""

    folder: ClassVar[str]
    files: ClassVar[dict[str, tuple[str, ...]]]
    meta_file: ClassVar[str]
    meta_key: ClassVar[str]
    label_key: ClassVar[str]
    key: ClassVar[str]
    title: ClassVar[str]
    tv_class: ClassVar[str]

    def __init__(
        self,
        root: str = "data",
        download: bool = False,
        pool_size: int | None = None,
        test_part: TestPart = "all",
        split_seed: int = 42,
        seed: int = 0,
    ) -> None:
        if pool_size is not None and pool_size <= 0:
            raise DataError(f"{self.title} pool_size must be positive, got {pool_size}")
        if test_part not in ("all", "val", "test"):
            raise DataError(f"{self.title} test_part must be all, val or test, got {test_part!r}")
        self.root = root
        self.download = download
        self.pool_size = pool_size
        self.test_part = test_part
        self.split_seed = split_seed
        self.seed = seed

    @property
    def folder_path(self) -> Path:
        """The folder holding the batch files."""
        return Path(self.root) / self.folder

    def _paths(self, split: str) -> list[Path]:
        folder = self.folder_path
        paths = [folder / f for f in self.files[split]]
        if not all(p.is_file() for p in paths) and self.download:
            self._download()
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            expected = ", ".join(self.files["train"] + self.files["test"] + (self.meta_file,))
            raise DataError(
                f"{self.title} not found: {folder} lacks {', '.join(missing)} (expected {expected} in {folder}); "
                f"set data.init_args.dataset.init_args.root to the folder that holds {self.folder}/, "
                "or download: true (online)"
            )
        self._check_meta()
        return paths

    def _download(self) -> None:
        import torchvision.datasets

        cls = getattr(torchvision.datasets, self.tv_class)
        try:
            for train in (True, False):
                cls(self.root, train=train, download=True)
        except Exception as e:  # noqa: BLE001  (network errors come in many types)
            raise DataError(f"cannot download {self.title} into {self.root}: {' '.join(str(e).split())}") from e

    def _check_meta(self) -> None:
        """The meta file's class names, when it is there, must be this class's."""
        path = self.folder_path / self.meta_file
        if not path.is_file():
            return
        names = _get(_cached_pickle(path), self.meta_key)
        names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
        if tuple(n.replace("_", " ") for n in names) != self.class_names:
            raise DataError(f"{path} names other classes than {self.title}'s: {', '.join(names[:5])}, ...")

    def _split(self, split: str, size: int | None, part: TestPart) -> ArraySplit:
        paths = self._paths(split)
        labels = np.concatenate([np.asarray(_get(_cached_pickle(p), self.label_key), dtype=np.int64) for p in paths])
        k = self.num_classes
        if labels.size and (labels.min() < 0 or labels.max() >= k):
            raise DataError(f"{self.title} files in {self.folder_path} hold labels outside 0..{k - 1}")
        rows = labelbench_halves(len(labels), part, self.split_seed) if split == "test" else None
        idx = torch.arange(len(labels)) if rows is None else torch.from_numpy(rows)
        idx = idx[subset_indices(len(idx), size, self.seed)]
        try:
            sources = {p.name: file_sha256(p) for p in paths}
        except OSError as e:
            raise DataError(f"cannot read {self.title} file: {e}") from e
        name = split if split == "train" else f"test-{part}"
        return ArraySplit(
            name=f"{self.key}-{name}",
            images=partial(_images, tuple(str(p) for p in paths)),
            targets=torch.from_numpy(labels[idx.numpy()]),
            ids=[f"{self.key}/{split}/{i}" for i in idx.tolist()],  # position in the concatenated batches
            fingerprint={
                "dataset": self.key,
                "split": name,
                "size": size,
                "seed": self.seed,
                "split_seed": self.split_seed if rows is not None else None,
            },  # fmt: skip
            rows=idx,
            sources=sources,
            item_shape=(3, 32, 32),
        )

    def pool_split(self) -> ArraySplit:
        """The pool: the 50,000 train images (or a seeded subset of ``pool_size``)."""
        return self._split("train", self.pool_size, "all")

    def test_split(self) -> ArraySplit:
        """The official test set, or LabelBench's validation or test half of it (``test_part``)."""
        return self._split("test", None, self.test_part)


class CIFAR10(_CIFAR):
    """CIFAR-10: 50,000 train and 10,000 test 32x32 images, 10 classes.

    Args:
        root: Folder holding ``cifar-10-batches-py/`` (torchvision's ``root``).
        download: Download it with torchvision when the files are missing (needs network access).
        pool_size: Seeded subset of the train split as the pool (None = all 50,000).
        test_part: ``all`` (official test set), ``val`` or ``test`` (LabelBench's halves of it).
        split_seed: Seed of LabelBench's val/test permutation (42 is LabelBench's).
        seed: Seed of the pool subset.
    """

    class_names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    folder = "cifar-10-batches-py"
    files: ClassVar[dict[str, tuple[str, ...]]] = {
        "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test": ("test_batch",),
    }
    meta_file = "batches.meta"
    meta_key = "label_names"
    label_key = "labels"
    key = "cifar10"
    title = "CIFAR-10"
    tv_class = "CIFAR10"


class CIFAR100(_CIFAR):
    """CIFAR-100: 50,000 train and 10,000 test 32x32 images, 100 classes (the fine labels).

    Class names are the fine label names with ``_`` as a space (``aquarium fish``), for CLIP prompts.

    Args:
        root: Folder holding ``cifar-100-python/`` (torchvision's ``root``).
        download: Download it with torchvision when the files are missing (needs network access).
        pool_size: Seeded subset of the train split as the pool (None = all 50,000).
        test_part: ``all`` (official test set), ``val`` or ``test`` (LabelBench's halves of it).
        split_seed: Seed of LabelBench's val/test permutation (42 is LabelBench's).
        seed: Seed of the pool subset.
    """

    class_names = tuple(n.replace("_", " ") for n in CIFAR100_CLASSES)
    folder = "cifar-100-python"
    files: ClassVar[dict[str, tuple[str, ...]]] = {"train": ("train",), "test": ("test",)}
    meta_file = "meta"
    meta_key = "fine_label_names"
    label_key = "fine_labels"
    key = "cifar100"
    title = "CIFAR-100"
    tv_class = "CIFAR100"


def _get(d: dict, key: str) -> Any:
    """``d[key]`` whether the pickle's keys are str (latin1-decoded) or bytes."""
    for k in (key, key.encode()):
        if k in d:
            return d[k]
    raise DataError(f"CIFAR pickle has no {key!r} entry (keys: {', '.join(map(str, list(d)[:6]))})")


def _cached_pickle(path: Path) -> dict:
    """A CIFAR batch file, read once per process for each ``(path, size, mtime)``."""
    return read_once(path, _read_pickle, "CIFAR file")


def _read_pickle(path: str) -> dict:
    """A CIFAR batch file's dict."""
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="latin1")  # noqa: S301  (the data set's own format)
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise DataError(f"cannot read CIFAR file {path}: {e}") from e
    if not isinstance(d, dict):
        raise DataError(f"CIFAR file {path} does not hold a dict")
    return d


def _images(paths: tuple[str, ...]) -> Tensor:
    """All images of the batch files as ``uint8 [n, 3, 32, 32]``."""
    arrays = []
    for p in paths:
        data = np.asarray(_get(_cached_pickle(Path(p)), "data"), dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DataError(f"CIFAR file {p} holds data of shape {data.shape}, not [n, 3072]")
        arrays.append(data.reshape(-1, 3, 32, 32))
    return torch.from_numpy(np.concatenate(arrays))
