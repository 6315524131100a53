import math

import pytest
import torch

from lbench.data import CIFAR10, ArraySplit, Imbalanced, PoolDataset, SubsetSplit
from lbench.data.imbalance import long_tail_counts
from lbench.errors import ConfigError
from tests.data.fake_datasets import write_cifar10


class Balanced(PoolDataset):
    """``per_class`` items of each of ``k`` classes, labels interleaved (item i has label i % k)."""

    def __init__(self, k=10, per_class=500):
        self.class_names = tuple(f"c{i}" for i in range(k))
        n = k * per_class
        self.images = torch.arange(n, dtype=torch.int64).remainder(256).to(torch.uint8).view(n, 1, 1, 1)
        self.targets = torch.arange(n) % k

    def pool_split(self):
        return ArraySplit("balanced-train", self.images, self.targets, fingerprint={"dataset": "balanced"})

    def test_split(self):
        return ArraySplit("balanced-test", self.images[:100], self.targets[:100])


def formula(n_max, ratio, k):
    return [math.floor(n_max * ratio ** (-c / (k - 1)) + 1e-9) for c in range(k)]


@pytest.mark.parametrize("ratio", [1.0, 10.0, 50.0, 100.0, 200.0])
def test_counts_match_the_formula(ratio):
    ds = Imbalanced(Balanced(k=10, per_class=500), imbalance_ratio=ratio, imbalance_seed=3)
    pool = ds.pool_split()
    counts = torch.bincount(pool.targets, minlength=10).tolist()
    assert counts == formula(500, ratio, 10)
    assert counts[0] == 500 and counts[-1] == math.floor(500 / ratio + 1e-9)
    assert len(ds.test_split()) == 100  # the test split stays balanced


def test_cifar10_lt_100_profile():
    """CIFAR-10-LT with ratio 100: 5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50."""
    assert long_tail_counts([5000] * 10, 100.0) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def test_deterministic_per_seed_and_items_are_the_base_items():
    base = Balanced(k=4, per_class=50)
    a = Imbalanced(base, imbalance_ratio=10, imbalance_seed=0).pool_split()
    b = Imbalanced(base, imbalance_ratio=10, imbalance_seed=0).pool_split()
    c = Imbalanced(base, imbalance_ratio=10, imbalance_seed=1).pool_split()
    assert isinstance(a, SubsetSplit) and torch.equal(a.rows, b.rows) and not torch.equal(a.rows, c.rows)
    assert a.content_hash == b.content_hash != c.content_hash
    assert torch.bincount(a.targets).tolist() == torch.bincount(c.targets).tolist() == [50, 23, 10, 5]
    image, label, index = a[7]
    row = int(a.rows[7])
    assert torch.equal(image, base.pool_split().load_image(row)) and label == row % 4 and index == 7
    assert a.item_id(7) == f"balanced-train/{row}" and a.fingerprint["imbalance_ratio"] == 10


def test_shuffled_class_order_and_test_option():
    base = Balanced(k=5, per_class=40)
    ds = Imbalanced(base, imbalance_ratio=8, imbalance_seed=2, class_order="shuffled", imbalance_test=True)
    order = ds.order()
    assert sorted(order) == list(range(5)) and ds.order() == order
    counts = torch.bincount(ds.pool_split().targets, minlength=5).tolist()
    expect = formula(40, 8, 5)
    assert [counts[c] for c in order] == expect
    assert len(ds.test_split()) < 100 and ds.class_names == base.class_names and ds.num_classes == 5


def test_a_class_with_fewer_items_keeps_them_all():
    assert long_tail_counts([100, 3, 100], 2.0) == [100, 3, 50]


def test_none_ratio_is_the_data_set_and_bad_ratio_is_refused():
    base = Balanced(k=3, per_class=10)
    assert len(Imbalanced(base, imbalance_ratio=None).pool_split()) == 30
    with pytest.raises(ConfigError, match="imbalance_ratio"):
        Imbalanced(base, imbalance_ratio=0.5)


def test_imbalanced_cifar10_on_files(tmp_path):
    write_cifar10(tmp_path, per_batch=40)
    base = CIFAR10(root=str(tmp_path))
    ds = Imbalanced(base, imbalance_ratio=4, imbalance_seed=0)
    pool = ds.pool_split()
    avail = torch.bincount(base.pool_split().targets, minlength=10).tolist()
    n_max = max(avail)
    want = [min(a, math.floor(n_max * 4 ** (-c / 9) + 1e-9)) for c, a in enumerate(avail)]
    assert torch.bincount(pool.targets, minlength=10).tolist() == want
    assert pool.base._array is None  # still lazy
    assert pool[0][0].shape == (3, 32, 32)
