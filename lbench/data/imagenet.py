"""ImageNet-1k (ILSVRC 2012) from the standard folder layout, with a class-index mapping file.

Layout under ``root``::

    <root>/train/<wnid>/*.JPEG            1,281,167 images, one folder per synset (n01440764, ...)
    <root>/val/<wnid>/*.JPEG              50,000 images, sorted into synset folders,
      or <root>/val/*.JPEG + LOC_val_solution.csv (in root or beside the mapping file): flat, Kaggle's
    <root>/LOC_synset_mapping.txt         "n01440764 tench, Tinca tinca", one line per class
      or <root>/meta.bin                  torchvision's devkit meta (``torchvision.datasets.ImageNet``
                                          writes it when it parses the devkit)

The mapping file gives the classes: labels are the indices of the sorted wnids (1000; the order of
torchvision's ``ImageNet`` and of the mapping file), class names the first name of each synset
(``tench``), for CLIP prompts. ``LOC_synset_mapping.txt`` and ``LOC_val_solution.csv`` ship with the
Kaggle "ImageNet Object Localization Challenge" download (``root`` = its ``ILSVRC/Data/CLS-LOC`` folder,
``mapping_file`` the path of ``LOC_synset_mapping.txt``, next to ``LOC_val_solution.csv``);
torchvision's ``meta.bin`` is made by ``torchvision.datasets.ImageNet(root, split=...)`` from
``ILSVRC2012_devkit_t12.tar.gz``, which also sorts the val images into synset folders. A flat val folder
is listed in the order of the sorted one (class, then file name), so the test parts are the same.

Items are image files read with PIL on access (:class:`~lbench.data.files.FileSplit`), listed in
sorted order (class, then file name: torchvision's ``ImageFolder`` order).

Test split conventions (``test_part``): ``all`` is the 50,000 validation images (ImageNet's usual
test set); ``val`` / ``test`` are LabelBench's parts of them: ``torch.randperm(50000)`` with a
generator seeded by ``split_seed`` (42), the first quarter (12,500) validation and the rest
(37,500) test, as ``torch.utils.data.random_split`` makes them. The paper's test accuracies are on
``test``.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from lbench.data.base import PoolDataset, subset_indices
from lbench.data.cifar import TestPart
from lbench.data.files import FileSplit, OnBadImage
from lbench.data.folder import IMAGE_SUFFIXES
from lbench.errors import DataError

__all__ = ["ImageNet", "read_synset_mapping"]

MAPPING_FILES = ("LOC_synset_mapping.txt", "meta.bin")
#: Labels of a flat val folder (the Kaggle download's ``LOC_val_solution.csv``: ImageId,PredictionString).
VAL_SOLUTION = "LOC_val_solution.csv"
_WNID = re.compile(r"n\d{8}")


def read_synset_mapping(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{wnid: class name}`` from ``LOC_synset_mapping.txt`` or torchvision's ``meta.bin``.

    The class name is the first of the synset's names (``n01440764 tench, Tinca tinca`` -> ``tench``).

    Raises:
        DataError: The file cannot be read or holds no classes.
    """
    path = Path(path)
    out: dict[str, str] = {}
    try:
        if path.suffix == ".bin":
            meta = torch.load(path, weights_only=False)
            wnid_to_classes = meta[0] if isinstance(meta, tuple | list) else meta
            for wnid, names in dict(wnid_to_classes).items():
                first = names[0] if isinstance(names, tuple | list) else str(names).split(",")[0]
                out[str(wnid)] = str(first).strip()
        else:
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                wnid, _, names = line.strip().partition(" ")
                if not _WNID.fullmatch(wnid) or not names:
                    raise ValueError(f"line {n} is not '<wnid> <names>': {line[:60]!r}")
                out[wnid] = names.split(",")[0].strip()
    except (OSError, ValueError, TypeError, KeyError, IndexError, RuntimeError) as e:
        raise DataError(f"cannot read the ImageNet class mapping {path}: {e}") from e
    if not out:
        raise DataError(f"the ImageNet class mapping {path} holds no classes")
    return out


class ImageNet(PoolDataset):
    """ImageNet-1k as a pool (the train folder) and a test split (the val folder, or a part of it).

    Args:
        root: Folder holding ``train/``, ``val/`` and the mapping file.
        mapping_file: The class-index mapping (a path, absolute or relative to ``root``); None finds
            ``LOC_synset_mapping.txt`` or ``meta.bin`` in ``root``.
        image_size: Shorter side resized to this and the centre square cropped when an image is read.
        pool_size: Seeded subset of the train images as the pool (None = all).
        test_part: ``all`` (the 50,000 val images), ``val`` or ``test`` (LabelBench's 12,500 / 37,500).
        split_seed: Seed of LabelBench's val/test permutation (42 is LabelBench's).
        seed: Seed of the pool subset.
        on_bad_image: ``error`` or ``skip`` (see :class:`~lbench.data.files.FileSplit`).
        hash_files: Identify files by SHA-256 rather than size and modification time.

    Raises:
        DataError: No mapping file, or a train folder that is not a class of it.
    """

    def __init__(
        self,
        root: str = "data/imagenet",
        mapping_file: str | None = None,
        image_size: int | None = 224,
        pool_size: int | None = None,
        test_part: TestPart = "all",
        split_seed: int = 42,
        seed: int = 0,
        on_bad_image: OnBadImage = "error",
        hash_files: bool = False,
    ) -> None:
        if pool_size is not None and pool_size <= 0:
            raise DataError(f"ImageNet pool_size must be positive, got {pool_size}")
        if test_part not in ("all", "val", "test"):
            raise DataError(f"ImageNet test_part must be all, val or test, got {test_part!r}")
        self.root = Path(root)
        self.image_size = image_size
        self.pool_size = pool_size
        self.test_part = test_part
        self.split_seed = split_seed
        self.seed = seed
        self.on_bad_image = on_bad_image
        self.hash_files = hash_files
        if mapping_file is not None:
            path = Path(mapping_file) if Path(mapping_file).is_absolute() else self.root / mapping_file
            if not path.is_file():
                raise DataError(f"ImageNet class mapping {path} does not exist")
        else:
            found = [self.root / f for f in MAPPING_FILES if (self.root / f).is_file()]
            if not found:
                raise DataError(
                    f"ImageNet not found in {self.root}: need {' or '.join(MAPPING_FILES)} there, with "
                    f"{self.root}/train/<wnid>/*.JPEG and {self.root}/val/<wnid>/*.JPEG; "
                    "set data.init_args.dataset.init_args.root"
                )
            path = found[0]
        self.mapping_file = str(path)
        mapping = read_synset_mapping(path)
        self.wnids = tuple(sorted(mapping))
        self.class_names = tuple(mapping[w] for w in self.wnids)

    def _list(self, sub: str) -> tuple[list[str], list[int]]:
        folder = self.root / sub
        if not folder.is_dir():
            raise DataError(f"ImageNet folder {folder} does not exist (expected {folder}/<wnid>/*.JPEG)")
        index = {w: k for k, w in enumerate(self.wnids)}
        files: list[str] = []
        labels: list[int] = []
        with os.scandir(folder) as it:
            class_dirs = sorted(e.name for e in it if e.is_dir())
        if not class_dirs and sub == "val":
            return self._flat_val(folder)
        if not class_dirs:
            raise DataError(f"ImageNet folder {folder} has no <wnid> sub-folders (expected {folder}/<wnid>/*.JPEG)")
        for wnid in class_dirs:
            if wnid not in index:
                raise DataError(f"ImageNet folder {folder / wnid} is not a class of {self.mapping_file}")
            with os.scandir(folder / wnid) as it:
                names = sorted(e.name for e in it if e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES)
            files += [f"{sub}/{wnid}/{n}" for n in names]
            labels += [index[wnid]] * len(names)
        if not files:
            raise DataError(f"ImageNet folder {folder} holds no image files")
        return files, labels

    def _flat_val(self, folder: Path) -> tuple[list[str], list[int]]:
        """A flat ``val/`` folder labeled by ``LOC_val_solution.csv`` (Kaggle), in (class, file name) order."""
        places = [self.root / VAL_SOLUTION, Path(self.mapping_file).parent / VAL_SOLUTION]
        solution = next((p for p in places if p.is_file()), places[0])
        if not solution.is_file():
            raise DataError(f"ImageNet folder {folder} has no <wnid> sub-folders and {solution} does not exist: sort "
                            f"the val images into {folder}/<wnid>/ or add {VAL_SOLUTION}")  # fmt: skip
        index = {w: k for k, w in enumerate(self.wnids)}
        with os.scandir(folder) as it:
            present = {e.name for e in it if e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES}
        by_stem = {Path(n).stem: n for n in present}
        items: list[tuple[int, str]] = []
        try:
            with open(solution, newline="") as f:
                for row in csv.DictReader(f):
                    name = by_stem.get(row["ImageId"])
                    wnid = (row["PredictionString"].split() or [""])[0]
                    if name is None:
                        continue
                    if wnid not in index:
                        raise DataError(f"{solution}: {row['ImageId']} has class {wnid!r}, not one of the mapping's")
                    items.append((index[wnid], name))
        except (OSError, KeyError, csv.Error) as e:
            raise DataError(f"cannot read {solution} (ImageId,PredictionString): {e}") from e
        if not items:
            raise DataError(f"ImageNet folder {folder}: no image file is labeled in {solution}")
        items.sort()
        return [f"val/{n}" for _, n in items], [k for k, _ in items]

    def _split(self, sub: str, rows_of: Callable[[int], Tensor | None], name: str, fingerprint: dict) -> FileSplit:
        files, labels = self._list(sub)
        rows = rows_of(len(files))
        if rows is not None:
            files = [files[i] for i in rows.tolist()]
            labels = [labels[i] for i in rows.tolist()]
        return FileSplit(
            name=f"imagenet-{name}",
            files=files,
            targets=labels,
            root=self.root,
            fingerprint={"dataset": "imagenet", "split": name, **fingerprint},
            image_size=self.image_size,
            on_bad_image=self.on_bad_image,
            hash_files=self.hash_files,
        )

    def pool_split(self) -> FileSplit:
        """The pool: the train images (or a seeded subset of ``pool_size``)."""

        def rows_of(n: int) -> Tensor | None:
            if self.pool_size is None or self.pool_size >= n:
                return None
            return subset_indices(n, self.pool_size, self.seed)

        return self._split("train", rows_of, "train", {"size": self.pool_size, "seed": self.seed})

    def test_split(self) -> FileSplit:
        """The val images, or LabelBench's validation or test part of them (``test_part``)."""
        if self.test_part == "all":
            return self._split("val", lambda n: None, "val", {})

        def rows_of(n: int) -> Tensor:
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))
            return (perm[: n // 4] if self.test_part == "val" else perm[n // 4 :]).sort().values

        return self._split("val", rows_of, f"val-{self.test_part}", {"split_seed": self.split_seed})
