from pathlib import Path

import numpy as np
import pytest
import torch

from lbench.data import Digits, FashionMNIST
from lbench.data.fashion_mnist import DEFAULT_ROOT
from lbench.errors import DataError

HAS_FMNIST = Path(DEFAULT_ROOT, "train-images-idx3-ubyte.gz").exists()


def test_digits_split_is_stratified_and_disjoint():
    d = Digits(test_fraction=0.3, seed=0)
    pool, test = d.pool_split(), d.test_split()
    assert len(pool) + len(test) == 1797
    assert torch.bincount(test.targets).min() >= 50
    img, label, index = pool[5]
    assert img.shape == (1, 8, 8) and 0.0 <= img.min() and img.max() <= 1.0
    assert index == 5 and label == int(pool.targets[5])


def test_fashion_mnist_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        FashionMNIST(root=str(tmp_path)).pool_split()


def test_fashion_mnist_corrupt_file(tmp_path):
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read IDX file"):
        FashionMNIST(root=str(tmp_path)).pool_split()


def test_fashion_mnist_reads_idx_files_written_here(tmp_path):
    import gzip

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(30, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=30, dtype=np.uint8)
    for img_name, lab_name in [
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    ]:
        head = (2051).to_bytes(4, "big") + (30).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
        (tmp_path / img_name).write_bytes(gzip.compress(head + images.tobytes()))
        (tmp_path / lab_name).write_bytes(
            gzip.compress((2049).to_bytes(4, "big") + (30).to_bytes(4, "big") + labels.tobytes())
        )
    ds = FashionMNIST(root=str(tmp_path), pool_size=10, seed=1)
    pool = ds.pool_split()
    assert len(pool) == 10 and pool.images.shape == (10, 1, 28, 28)
    idx = [i for i in range(30) if (images[i] == pool.images[0, 0].numpy()).all()][0]
    assert int(pool.targets[0]) == labels[idx]
    assert pool.item_id(0) == f"fashion_mnist/train/{idx}"
    assert len(ds.test_split()) == 30


@pytest.mark.skipif(not HAS_FMNIST, reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_debian_package():
    ds = FashionMNIST(pool_size=1000, test_size=500, seed=0)
    pool = ds.pool_split()
    assert len(pool) == 1000 and len(ds.test_split()) == 500
    assert torch.bincount(pool.targets, minlength=10).min() > 50  # balanced classes
    assert ds.num_classes == 10
    assert pool.content_hash != FashionMNIST(pool_size=1000, seed=1).pool_split().content_hash
