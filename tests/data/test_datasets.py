import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lbench.data import ArraySplit, Digits, FashionMNIST, ImageSplit
from lbench.data.fashion_mnist import DEFAULT_ROOT
from lbench.errors import DataError

HAS_FMNIST = Path(DEFAULT_ROOT, "train-images-idx3-ubyte.gz").exists()


def write_idx(folder, images, labels, truncate_images=False):
    """Write the four Fashion-MNIST IDX files (train and test hold the same arrays)."""
    n, r, c = images.shape
    head = (2051).to_bytes(4, "big") + n.to_bytes(4, "big") + r.to_bytes(4, "big") + c.to_bytes(4, "big")
    body = images.tobytes()[: -r * c] if truncate_images else images.tobytes()
    for img_name, lab_name in [
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    ]:
        (folder / img_name).write_bytes(gzip.compress(head + body))
        (folder / lab_name).write_bytes(
            gzip.compress((2049).to_bytes(4, "big") + n.to_bytes(4, "big") + labels.tobytes())
        )


def random_idx(n=30, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n, dtype=np.uint8)


def test_digits_split_is_stratified_and_disjoint():
    d = Digits(test_fraction=0.3, seed=0)
    pool, test = d.pool_split(), d.test_split()
    assert isinstance(pool, ImageSplit)
    assert len(pool) + len(test) == 1797
    assert torch.bincount(test.targets).min() >= 50
    img, label, index = pool[5]
    assert img.shape == (1, 8, 8) and 0.0 <= img.min() and img.max() <= 1.0
    assert index == 5 and label == int(pool.targets[5])
    assert pool.content_hash == Digits(test_fraction=0.3, seed=0).pool_split().content_hash
    assert pool.content_hash != Digits(test_fraction=0.3, seed=1).pool_split().content_hash


def test_fashion_mnist_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        FashionMNIST(root=str(tmp_path)).pool_split()


def test_fashion_mnist_corrupt_file(tmp_path):
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read IDX file"):
        FashionMNIST(root=str(tmp_path)).pool_split()


def test_fashion_mnist_reads_idx_files_written_here(tmp_path):
    images, labels = random_idx()
    write_idx(tmp_path, images, labels)
    ds = FashionMNIST(root=str(tmp_path), pool_size=10, seed=1)
    pool = ds.pool_split()
    assert len(pool) == 10 and pool.images.shape == (10, 1, 28, 28)
    idx = [i for i in range(30) if (images[i] == pool.images[0, 0].numpy()).all()][0]
    assert int(pool.targets[0]) == labels[idx]
    assert pool.item_id(0) == f"fashion_mnist/train/{idx}"
    image, label, index = pool[0]
    assert torch.equal(image, torch.from_numpy(images[idx]).float().div(255).unsqueeze(0))
    assert (label, index) == (labels[idx], 0)
    assert len(ds.test_split()) == 30


def test_fashion_mnist_opens_without_decoding_images(tmp_path):
    """The split opens (labels, ids, content hash) from the header; a damaged image body shows on access."""
    images, labels = random_idx()
    write_idx(tmp_path, images, labels, truncate_images=True)
    pool = FashionMNIST(root=str(tmp_path), pool_size=10, seed=1).pool_split()
    assert len(pool) == 10 and len(pool.content_hash) == 16
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        pool[0]


def test_fashion_mnist_content_hash_follows_content_and_subset(tmp_path):
    images, labels = random_idx()
    write_idx(tmp_path, images, labels)

    def pool_hash(**kw):
        return FashionMNIST(root=str(tmp_path), **{"pool_size": 10, "seed": 1, **kw}).pool_split().content_hash

    first = pool_hash()
    assert pool_hash() == first
    assert pool_hash(seed=2) != first and pool_hash(pool_size=11) != first
    images[:, 0, 0] ^= 1  # one pixel of every image changes; the files keep their sizes
    write_idx(tmp_path, images, labels)
    for f in tmp_path.iterdir():
        os.utime(f, ns=(10**18, 10**18))  # a modification time the first files did not have
    assert pool_hash() != first


def test_image_split_protocol_and_compatible_constructor():
    images = torch.randint(0, 256, (5, 1, 4, 4), dtype=torch.uint8)
    split = ImageSplit("toy", images, torch.arange(5) % 2, fingerprint={"toy": 1})
    assert isinstance(split, ArraySplit) and split.images is images
    assert split.item_id(3) == "toy/3" and split.fingerprint == {"toy": 1}
    with pytest.raises(IndexError):
        split[5]
    loads = []
    lazy = ArraySplit("lazy", lambda: loads.append(1) or images, torch.zeros(2), rows=torch.tensor([4, 1]))
    assert lazy.content_hash and loads == [1]  # no sources: the pixels are hashed (one load)
    lazy2 = ArraySplit("lazy", lambda: images, torch.zeros(2), rows=torch.tensor([4, 1]), sources={"f": "abc"},
                       item_shape=(1, 4, 4))  # fmt: skip
    assert lazy2.content_hash and lazy2._array is None  # with sources: no load at all
    assert torch.equal(lazy[0][0], images[4].float() / 255) and lazy[1][2] == 1 and loads == [1]


@pytest.mark.skipif(not HAS_FMNIST, reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_debian_package():
    ds = FashionMNIST(pool_size=1000, test_size=500, seed=0)
    pool = ds.pool_split()
    assert len(pool) == 1000 and len(ds.test_split()) == 500
    assert torch.bincount(pool.targets, minlength=10).min() > 50  # balanced classes
    assert ds.num_classes == 10
    assert pool.content_hash != FashionMNIST(pool_size=1000, seed=1).pool_split().content_hash
