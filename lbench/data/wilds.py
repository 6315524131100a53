"""iWildCam and fMoW (WILDS) read from the WILDS on-disk layout, with their true classes.

The files are read directly (the csv module and PIL), as the ``wilds`` package lays them out and
splits them; the package itself (``pip install wilds``, an optional extra) is only needed for
``download: true``. Layouts under ``root`` (``wilds.get_dataset(..., root_dir=root)``)::

    <root>/iwildcam_v2.0/metadata.csv      split, ..., y, category_id, datetime, filename, ...
    <root>/iwildcam_v2.0/categories.csv    y, category_id, name   (y = 99999: not in the data)
    <root>/iwildcam_v2.0/train/<filename>  every image, whatever its split
    <root>/fmow_v1.1/rgb_metadata.csv      split, img_filename, ..., category, ..., timestamp, ...
    <root>/fmow_v1.1/images/rgb_img_<row>.png   <row>: the row of rgb_metadata.csv
    (fmow_v1.1/country_code_mapping.csv, for the region groups of the OOD evaluation, is not read)

Classes: iWildCam has ``max(y) + 1`` classes (182 in v2.0), named from ``categories.csv`` (no
folding into 14 classes as LabelBench does); fMoW its 62 categories (WILDS' order).

Splits: the pool is ``train``; the test split is ``id_test`` (the in-distribution test the paper
reports), and ``id_val`` is the in-distribution validation split for tuning (the paper's setup,
as LabelBench's loader uses them); ``val`` / ``test`` are WILDS' out-of-distribution splits.
fMoW's splits follow WILDS' ``official`` scheme (``time_after_2016``): rows of ``split`` val/test
taken at or after 2016 are OOD test, those of 2013-2015 OOD validation, earlier ones in
distribution; ``seq`` rows are left out; ``train`` rows from 2013 on are not used.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from lbench.data.base import PoolDataset, subset_indices
from lbench.data.files import FileSplit, OnBadImage
from lbench.errors import DataError

__all__ = ["FMOW_CLASSES", "FMoW", "IWildCam", "WildsDataset"]

FMOW_CLASSES = (
    "airport", "airport_hangar", "airport_terminal", "amusement_park", "aquaculture", "archaeological_site", "barn",
    "border_checkpoint", "burial_site", "car_dealership", "construction_site", "crop_field", "dam", "debris_or_rubble",
    "educational_institution", "electric_substation", "factory_or_powerplant", "fire_station", "flooded_road",
    "fountain", "gas_station", "golf_course", "ground_transportation_station", "helipad", "hospital",
    "impoverished_settlement", "interchange", "lake_or_pond", "lighthouse", "military_facility",
    "multi-unit_residential", "nuclear_powerplant", "office_building", "oil_or_gas_facility", "park",
    "parking_lot_or_garage", "place_of_worship", "police_station", "port", "prison", "race_track", "railway_bridge",
    "recreational_facility", "road_bridge", "runway", "shipyard", "shopping_mall", "single-unit_residential",
    "smokestack", "solar_farm", "space_facility", "stadium", "storage_tank", "surface_mine", "swimming_pool",
    "toll_booth", "tower", "tunnel_opening", "waste_disposal", "water_treatment_facility", "wind_farm", "zoo",
)  # fmt: skip

WildsSplit = Literal["train", "id_val", "id_test", "val", "test"]
_FOLDERS = {"iwildcam": "iwildcam_v2.0", "fmow": "fmow_v1.1"}
_NEEDS = {"iwildcam": ("metadata.csv", "categories.csv", "train/"), "fmow": ("rgb_metadata.csv", "images/")}
_SPLITS = ("train", "id_val", "id_test", "val", "test")


class WildsDataset(PoolDataset):
    """A WILDS data set (``iwildcam`` or ``fmow``) as a pool and a test split.

    Args:
        dataset: ``iwildcam`` or ``fmow``.
        root: WILDS' ``root_dir``: the folder holding ``iwildcam_v2.0/`` or ``fmow_v1.1/``.
        pool_part: The WILDS split that is the pool (``train``).
        test_part: The WILDS split that is the test split (``id_test``, the paper's; ``id_val`` to
            tune on; ``test``/``val`` for the OOD ones).
        image_size: Shorter side resized to this and the centre square cropped when an image is read.
        pool_size: Seeded subset of the pool (None = all).
        seed: Seed of the pool subset.
        download: Download with the ``wilds`` package when the files are missing (online; ``pip
            install wilds``; 12 GB for iWildCam, 50 GB for fMoW).
        on_bad_image: ``error`` or ``skip`` (see :class:`~lbench.data.files.FileSplit`).

    Raises:
        DataError: The files are missing or malformed (the message names the expected layout).
    """

    def __init__(
        self,
        dataset: Literal["iwildcam", "fmow"],
        root: str = "data",
        pool_part: WildsSplit = "train",
        test_part: WildsSplit = "id_test",
        image_size: int | None = 224,
        pool_size: int | None = None,
        seed: int = 0,
        download: bool = False,
        on_bad_image: OnBadImage = "error",
    ) -> None:
        if dataset not in _FOLDERS:
            raise DataError(f"WILDS dataset must be one of {', '.join(_FOLDERS)}, got {dataset!r}")
        for name, part in (("pool_part", pool_part), ("test_part", test_part)):
            if part not in _SPLITS:
                raise DataError(f"{name} must be one of {', '.join(_SPLITS)}, got {part!r}")
        if pool_size is not None and pool_size <= 0:
            raise DataError(f"{dataset} pool_size must be positive, got {pool_size}")
        self.dataset = dataset
        self.root = root
        self.pool_part = pool_part
        self.test_part = test_part
        self.image_size = image_size
        self.pool_size = pool_size
        self.seed = seed
        self.download = download
        self.on_bad_image = on_bad_image
        self._rows: tuple[list[str], list[int], list[str]] | None = None
        self._names: tuple[str, ...] | None = None

    @property
    def folder(self) -> Path:
        """The data set's folder (``<root>/iwildcam_v2.0`` or ``<root>/fmow_v1.1``)."""
        return Path(self.root) / _FOLDERS[self.dataset]

    @property
    def class_names(self) -> tuple[str, ...]:  # type: ignore[override]
        """Class names in label order (iWildCam's from ``categories.csv``, read on first use)."""
        if self.dataset == "fmow":
            return FMOW_CLASSES
        if self._names is None:
            self._load()
        assert self._names is not None
        return self._names

    def _ensure_files(self) -> None:
        first = self.folder / _NEEDS[self.dataset][0]
        if not first.is_file() and self.download:
            try:
                import wilds
            except ImportError as e:
                raise DataError("download: true needs the wilds package: pip install wilds") from e
            try:
                wilds.get_dataset(dataset=self.dataset, root_dir=self.root, download=True)
            except Exception as e:  # noqa: BLE001  (network errors come in many types)
                raise DataError(f"cannot download {self.dataset} into {self.root}: {' '.join(str(e).split())}") from e
        if not first.is_file():
            need = ", ".join(_NEEDS[self.dataset])
            raise DataError(
                f"{self.dataset} not found: {first} does not exist (expected {need} in {self.folder}, WILDS' layout); "
                "set data.init_args.dataset.init_args.root to WILDS' root_dir, "
                "or download: true (online, pip install wilds)"
            )

    def _load(self) -> None:
        """Read the metadata: per usable row its file (relative to the folder), label and WILDS split."""
        self._ensure_files()
        if self.dataset == "iwildcam":
            self._rows, self._names = _read_iwildcam(self.folder)
        else:
            self._rows, self._names = _read_fmow(self.folder)

    def _split(self, part: str, size: int | None) -> FileSplit:
        if self._rows is None:
            self._load()
        assert self._rows is not None
        files, labels, splits = self._rows
        keep = [i for i, s in enumerate(splits) if s == part]
        if not keep:
            raise DataError(f"{self.dataset} metadata in {self.folder} has no rows of split {part}")
        keep = [keep[i] for i in subset_indices(len(keep), size, self.seed).tolist()]
        return FileSplit(
            name=f"{self.dataset}-{part}",
            files=[files[i] for i in keep],
            targets=[labels[i] for i in keep],
            root=self.folder,
            fingerprint={"dataset": self.dataset, "split": part, "size": size, "seed": self.seed},
            image_size=self.image_size,
            on_bad_image=self.on_bad_image,
        )

    def pool_split(self) -> FileSplit:
        """The pool: WILDS' ``train`` split (``pool_part``), or a seeded subset of it."""
        return self._split(self.pool_part, self.pool_size)

    def test_split(self) -> FileSplit:
        """WILDS' ``id_test`` split (``test_part``)."""
        return self._split(self.test_part, None)


class IWildCam(WildsDataset):
    """iWildCam 2020 (WILDS v2.0): camera-trap photos, 182 classes, highly imbalanced.

    Args: as :class:`WildsDataset`, without ``dataset``.
    """

    def __init__(
        self,
        root: str = "data",
        pool_part: WildsSplit = "train",
        test_part: WildsSplit = "id_test",
        image_size: int | None = 224,
        pool_size: int | None = None,
        seed: int = 0,
        download: bool = False,
        on_bad_image: OnBadImage = "error",
    ) -> None:
        super().__init__("iwildcam", root, pool_part, test_part, image_size, pool_size, seed, download, on_bad_image)


class FMoW(WildsDataset):
    """Functional Map of the World (WILDS v1.1): satellite images, 62 classes.

    Args: as :class:`WildsDataset`, without ``dataset``.
    """

    def __init__(
        self,
        root: str = "data",
        pool_part: WildsSplit = "train",
        test_part: WildsSplit = "id_test",
        image_size: int | None = 224,
        pool_size: int | None = None,
        seed: int = 0,
        download: bool = False,
        on_bad_image: OnBadImage = "error",
    ) -> None:
        super().__init__("fmow", root, pool_part, test_part, image_size, pool_size, seed, download, on_bad_image)


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path} lacks the column(s) {', '.join(missing)}")
            return list(reader)
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from e


def _read_iwildcam(folder: Path) -> tuple[tuple[list[str], list[int], list[str]], tuple[str, ...]]:
    rows = _read_csv(folder / "metadata.csv", ("split", "y", "filename"))
    try:
        labels = [int(r["y"]) for r in rows]
    except ValueError as e:
        raise DataError(f"{folder / 'metadata.csv'}: a y value is not an integer ({e})") from e
    if not labels or min(labels) < 0:
        raise DataError(f"{folder / 'metadata.csv'} holds no rows, or a negative y")
    k = max(labels) + 1  # WILDS: n_classes = max(y) + 1
    bad = sorted({r["split"] for r in rows} - set(_SPLITS))
    if bad:
        raise DataError(f"{folder / 'metadata.csv'} has unknown split(s) {', '.join(bad)}")
    names: dict[int, str] = {}
    for r in _read_csv(folder / "categories.csv", ("y", "name")):
        try:
            y = int(r["y"])
        except ValueError:
            continue
        if 0 <= y < k:
            names[y] = r["name"].strip()
    missing = [y for y in range(k) if y not in names]
    if missing:
        raise DataError(f"{folder / 'categories.csv'} names no class for y = {', '.join(map(str, missing[:10]))}")
    files = [f"train/{r['filename']}" for r in rows]
    return (files, labels, [r["split"] for r in rows]), tuple(names[y] for y in range(k))


def _read_fmow(folder: Path) -> tuple[tuple[list[str], list[int], list[str]], tuple[str, ...]]:
    path = folder / "rgb_metadata.csv"
    rows = _read_csv(path, ("split", "category", "timestamp"))
    index = {c: k for k, c in enumerate(FMOW_CLASSES)}
    test_from, val_from = datetime(2016, 1, 1, tzinfo=UTC), datetime(2013, 1, 1, tzinfo=UTC)
    files: list[str] = []
    labels: list[int] = []
    splits: list[str] = []
    for row, r in enumerate(rows):
        if r["split"] == "seq":
            continue  # sequestered: not part of WILDS' data set
        if r["category"] not in index:
            raise DataError(f"{path} row {row}: unknown category {r['category']!r}")
        try:
            ts = datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
        except ValueError as e:
            raise DataError(f"{path} row {row}: bad timestamp {r['timestamp']!r}") from e
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        ood_test, ood_val = ts >= test_from, val_from <= ts < test_from
        s = r["split"]
        if s == "test":
            split = "test" if ood_test else ("id_test" if not ood_val else "unused")
        elif s == "val":
            split = "val" if ood_val else ("id_val" if not ood_test else "unused")
        elif s == "train":
            split = "unused" if ood_test or ood_val else "train"
        else:
            raise DataError(f"{path} row {row}: unknown split {s!r}")
        files.append(f"images/rgb_img_{row}.png")
        labels.append(index[r["category"]])
        splits.append(split)
    return (files, labels, splits), FMOW_CLASSES
