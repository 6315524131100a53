import numpy as np
import pytest
import torch

from lbench.data import CIFAR10, CIFAR100, PoolDataset
from lbench.data.cifar import labelbench_halves
from lbench.errors import DataError
from tests.data.fake_datasets import write_cifar10, write_cifar100


@pytest.mark.parametrize("bytes_keys", [False, True], ids=["str_keys", "bytes_keys"])
def test_cifar10_reads_torchvision_batches(tmp_path, bytes_keys):
    written = write_cifar10(tmp_path, bytes_keys=bytes_keys)
    ds = CIFAR10(root=str(tmp_path))
    assert isinstance(ds, PoolDataset) and ds.num_classes == 10 and ds.class_names[0] == "airplane"
    pool = ds.pool_split()
    assert len(pool) == 20 and pool._array is None  # opened: labels, ids, hash; no image array yet
    assert len(pool.content_hash) == 16 and pool._array is None
    data, labels = written["data_batch_2"]  # item 5 is the second batch's second image
    image, label, index = pool[5]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert torch.equal(image, torch.from_numpy(data[1].reshape(3, 32, 32)).float() / 255)
    assert (label, index) == (labels[1], 5) and pool.item_id(5) == "cifar10/train/5"
    test = ds.test_split()
    assert len(test) == 10 and test.targets.tolist() == written["test_batch"][1]


def test_cifar10_labelbench_test_halves(tmp_path):
    write_cifar10(tmp_path, test=11)
    val = CIFAR10(root=str(tmp_path), test_part="val").test_split()
    test = CIFAR10(root=str(tmp_path), test_part="test").test_split()
    assert (len(val), len(test)) == (5, 6)
    ids = {val.item_id(i) for i in range(5)} | {test.item_id(i) for i in range(6)}
    assert len(ids) == 11  # disjoint and covering
    # LabelBench: idxs = RandomState(42).permutation(n); val = idxs[:-n // 2], test = idxs[-n // 2:]
    idxs = np.random.RandomState(42).permutation(11)
    assert labelbench_halves(11, "val").tolist() == sorted(idxs[: -11 // 2].tolist())
    assert labelbench_halves(11, "test").tolist() == sorted(idxs[-11 // 2 :].tolist())
    assert val.content_hash != test.content_hash != CIFAR10(root=str(tmp_path)).test_split().content_hash


def test_cifar10_pool_subset_and_hash(tmp_path):
    write_cifar10(tmp_path)
    a = CIFAR10(root=str(tmp_path), pool_size=7, seed=1).pool_split()
    assert len(a) == 7
    assert a.content_hash == CIFAR10(root=str(tmp_path), pool_size=7, seed=1).pool_split().content_hash
    assert a.content_hash != CIFAR10(root=str(tmp_path), pool_size=7, seed=2).pool_split().content_hash


def test_cifar100_fine_labels_and_names(tmp_path):
    written = write_cifar100(tmp_path)
    ds = CIFAR100(root=str(tmp_path))
    assert ds.num_classes == 100 and ds.class_names[1] == "aquarium fish"
    pool = ds.pool_split()
    assert pool.targets.tolist() == written["train"][1]
    image, label, index = pool[3]
    assert image.shape == (3, 32, 32) and label == written["train"][1][3] and index == 3
    assert len(ds.test_split()) == 12


def test_cifar_missing_files_is_one_clear_line(tmp_path):
    with pytest.raises(DataError) as e:
        CIFAR10(root=str(tmp_path)).pool_split()
    msg = str(e.value)
    assert "\n" not in msg and "cifar-10-batches-py" in msg and "data_batch_1" in msg and "batches.meta" in msg
    with pytest.raises(DataError, match="cifar-100-python.*train"):
        CIFAR100(root=str(tmp_path)).test_split()


def test_cifar_download_uses_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    def fake(root, train, download):
        calls.append((root, train, download))
        if train:
            write_cifar10(root)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake)
    assert len(CIFAR10(root=str(tmp_path), download=True).pool_split()) == 20
    assert calls == [(str(tmp_path), True, True), (str(tmp_path), False, True)]


def test_cifar_meta_with_other_classes_is_refused(tmp_path):
    write_cifar10(tmp_path)
    import pickle

    with open(tmp_path / "cifar-10-batches-py" / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    with pytest.raises(DataError, match="other classes"):
        CIFAR10(root=str(tmp_path)).pool_split()
