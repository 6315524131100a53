"""Tiny fake data sets in each real on-disk format (CIFAR pickles, ImageNet folders, WILDS metadata)."""

import csv
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from lbench.data.cifar import CIFAR10, CIFAR100_CLASSES

IWILDCAM_NAMES = ["empty", "deer", "fox", "tayassu pecari", "meleagris ocellata"]


def write_cifar10(root, per_batch=4, test=10, seed=0, bytes_keys=False):
    """``root/cifar-10-batches-py``: 5 train batches of ``per_batch`` images, a test batch, the meta file."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    batches = {f"data_batch_{i}": per_batch for i in range(1, 6)} | {"test_batch": test}
    out = {}
    for name, n in batches.items():
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        with open(folder / name, "wb") as f:
            pickle.dump({key("batch_label"): name, key("labels"): labels, key("data"): data,
                         key("filenames"): [f"{name}_{i}.png" for i in range(n)]}, f, protocol=2)  # fmt: skip
        out[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({key("label_names"): list(CIFAR10.class_names), key("num_vis"): 3072}, f, protocol=2)
    return out


def write_cifar100(root, train=30, test=12, seed=0):
    """``root/cifar-100-python``: train, test (fine and coarse labels) and meta."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, n in (("train", train), ("test", test)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, size=n)]
        with open(folder / name, "wb") as f:
            pickle.dump({"filenames": [], "fine_labels": fine, "coarse_labels": [v // 5 for v in fine], "data": data},
                        f, protocol=2)  # fmt: skip
        out[name] = (data, fine)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": list(CIFAR100_CLASSES), "coarse_label_names": []}, f, protocol=2)
    return out


def _image(path, seed, size=(20, 16), color=None):
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    if color is not None:
        array[:] = color
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def write_imagenet(root, per_class=(5, 3), val_per_class=4, mapping="loc"):
    """A 2-class ImageNet folder: train/<wnid>/*.JPEG, val/<wnid>/*.JPEG and the mapping file."""
    root = Path(root)
    wnids = ["n01440764", "n01443537"][: len(per_class)]
    names = {"n01440764": ["tench", "Tinca tinca"], "n01443537": ["goldfish", "Carassius auratus"]}
    for k, (wnid, n) in enumerate(zip(wnids, per_class, strict=True)):
        for i in range(n):
            _image(root / "train" / wnid / f"{wnid}_{i}.JPEG", 100 * k + i, color=(200 * k, 50, 100))
        for i in range(val_per_class):
            _image(root / "val" / wnid / f"ILSVRC2012_val_{k:04d}{i:04d}.JPEG", 1000 + 100 * k + i)
    if mapping == "loc":
        (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} {', '.join(names[w])}\n" for w in wnids))
    elif mapping == "meta":
        import torch

        torch.save(({w: tuple(names[w]) for w in wnids}, []), root / "meta.bin")
    return wnids


def write_iwildcam(root, seed=0):
    """``root/iwildcam_v2.0``: metadata.csv (the columns WILDS writes), categories.csv, train/*.jpg.

    Labels 0..4; y = 4 appears only in id_test, so the class count must come from all splits.
    """
    folder = Path(root) / "iwildcam_v2.0"
    rows = []
    plan = [("train", [0, 1, 1, 2, 3, 0, 1, 2, 0, 0, 1, 3, 2, 0, 1, 0]), ("id_val", [0, 1]), ("id_test", [1, 2, 4]),
            ("val", [3]), ("test", [0])]  # fmt: skip
    for split, ys in plan:
        for y in ys:
            i = len(rows)
            rows.append({"": i, "split": split, "location_remapped": 0, "location": 10, "sequence_remapped": i,
                         "seq_id": f"s{i}", "y": y, "category_id": 100 + y, "datetime": "2013-05-01 10:00:00.000",
                         "filename": f"img{i:03d}.jpg", "image_id": f"id{i}"})  # fmt: skip
            _image(folder / "train" / f"img{i:03d}.jpg", seed + i, size=(24, 18))
    with open(folder / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(folder / "categories.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["y", "category_id", "name"])
        for y, name in enumerate(IWILDCAM_NAMES):
            w.writerow([y, 100 + y, name])
        w.writerow([99999, 999, "not in the data"])
    return rows


def write_fmow(root, seed=0):
    """``root/fmow_v1.1``: rgb_metadata.csv, country_code_mapping.csv, images/rgb_img_<row>.png.

    Returns ``{wilds split: [row, ...]}`` as WILDS' ``official`` scheme (time_after_2016) assigns them.
    """
    folder = Path(root) / "fmow_v1.1"
    plan = [  # (split column, year, category, expected WILDS split)
        ("train", 2010, "airport", "train"), ("train", 2012, "zoo", "train"), ("train", 2011, "dam", "train"),
        ("train", 2014, "airport", None), ("val", 2011, "zoo", "id_val"), ("val", 2014, "dam", "val"),
        ("val", 2017, "dam", None), ("test", 2012, "airport", "id_test"), ("test", 2016, "zoo", "test"),
        ("test", 2014, "zoo", None), ("seq", 2011, "dam", None), ("train", 2009, "wind_farm", "train"),
        ("test", 2011, "dam", "id_test"),
    ]  # fmt: skip
    expected = {}
    with open(folder.mkdir(parents=True, exist_ok=True) or folder / "rgb_metadata.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["split", "img_filename", "img_path", "spatial_reference", "epsg", "category", "visible",
                    "img_width", "img_height", "country_code", "cloud_cover", "timestamp", "lat", "lon"])  # fmt: skip
        for row, (split, year, cat, wilds_split) in enumerate(plan):
            w.writerow([split, f"{cat}_{row}_rgb.jpg", f"x/{cat}", "WGS84", 4326, cat, True, 224, 224, "USA", 0,
                        f"{year}-06-01T10:00:00Z", 0.0, 0.0])  # fmt: skip
            if split != "seq":
                _image(folder / "images" / f"rgb_img_{row}.png", seed + row, size=(16, 16))
            if wilds_split:
                expected.setdefault(wilds_split, []).append(row)
    (folder / "country_code_mapping.csv").write_text("alpha-3,region\nUSA,Americas\n")
    return expected
