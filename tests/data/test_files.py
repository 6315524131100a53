import os

import numpy as np
import pytest
import torch
from PIL import Image

from lbench.data import FileSplit, ImageFolder
from lbench.errors import DataError


def write_png(path, seed, size=(6, 5), mode="RGB"):
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    array = rng.integers(0, 256, size=shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)
    return array


def test_file_split_loads_images_lazily_and_names_bad_files(tmp_path):
    arrays = [write_png(tmp_path / f"img{i}.png", i) for i in range(3)]
    split = FileSplit("photos", ["img0.png", "img1.png", "img2.png"], [2, 0, 1], root=tmp_path)
    image, label, index = split[1]
    assert image.shape == (3, 5, 6) and (label, index) == (0, 1)
    assert torch.equal(image, torch.from_numpy(arrays[1]).permute(2, 0, 1).float() / 255)
    assert split.item_id(2) == "img2.png" and split.targets.tolist() == [2, 0, 1]
    grey = FileSplit("g", [tmp_path / "img0.png"], [0], mode="L", image_size=4)
    assert grey[0][0].shape == (1, 4, 4) and grey.item_id(0) == str(tmp_path / "img0.png")

    (tmp_path / "img1.png").write_bytes(b"not an image")  # damaged after the split was opened
    with pytest.raises(DataError, match=r"img1\.png.*item 1 of photos.*on_bad_image"):
        split[1]
    with pytest.raises(DataError, match=r"missing\.png"):
        FileSplit("photos", ["img0.png", "missing.png"], [0, 0], root=tmp_path)


def test_file_split_skips_bad_files_when_asked(tmp_path):
    for i in range(3):
        write_png(tmp_path / f"img{i}.png", i)
    (tmp_path / "img1.png").write_bytes((tmp_path / "img0.png").read_bytes()[:40])  # truncated PNG
    with pytest.warns(UserWarning, match=r"skipped 2 image file\(s\).*img1\.png"):
        split = FileSplit("p", ["img0.png", "img1.png", "img2.png", "gone.png"], [0, 1, 2, 3], root=tmp_path,
                          on_bad_image="skip")  # fmt: skip
    assert len(split) == 2 and split.targets.tolist() == [0, 2] and split.item_id(1) == "img2.png"
    assert split[1][1:] == (2, 1)
    with pytest.raises(DataError, match="no readable image files"), pytest.warns(UserWarning):
        FileSplit("p", ["img1.png"], [0], root=tmp_path, on_bad_image="skip")


def test_file_split_manifest_follows_files(tmp_path):
    for i in range(2):
        write_png(tmp_path / f"img{i}.png", i)

    def content_hash(**kw):
        return FileSplit("p", ["img0.png", "img1.png"], [0, 1], root=tmp_path, **kw).content_hash

    stat_hash, sha_hash = content_hash(), content_hash(hash_files=True)
    assert content_hash() == stat_hash and stat_hash != sha_hash
    assert FileSplit("p", ["img0.png", "img1.png"], [1, 1], root=tmp_path).content_hash != stat_hash  # labels
    assert FileSplit("p", ["img0.png"], [0], root=tmp_path).content_hash != stat_hash  # subset
    assert content_hash(image_size=4) != stat_hash
    os.utime(tmp_path / "img0.png", ns=(10**18, 10**18))  # touched, same bytes
    assert content_hash() != stat_hash and content_hash(hash_files=True) == sha_hash
    write_png(tmp_path / "img0.png", 7)  # new pixels, same size
    os.utime(tmp_path / "img0.png", ns=(2 * 10**18, 2 * 10**18))
    assert content_hash(hash_files=True) != sha_hash


def test_image_folder(tmp_path):
    seed = 0
    for split, n in (("train", 3), ("test", 1)):
        for c in ("cat", "dog"):
            for i in range(n):
                seed += 1
                write_png(tmp_path / split / c / f"{i}.png", seed, size=(9, 7))
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    ds = ImageFolder(str(tmp_path), image_size=5)
    assert ds.class_names == ("cat", "dog") and ds.num_classes == 2
    pool, test = ds.pool_split(), ds.test_split()
    assert len(pool) == 6 and len(test) == 2
    assert pool.targets.tolist() == [0, 0, 0, 1, 1, 1] and pool.item_id(3) == "train/dog/0.png"
    assert pool[0][0].shape == (3, 5, 5)
    write_png(tmp_path / "test" / "bird" / "0.png", 1)
    with pytest.raises(DataError, match="bird"):
        ds.test_split()
    with pytest.raises(DataError, match="does not exist"):
        ImageFolder(str(tmp_path / "nowhere"))
