import json
import os

import pytest
import torch

from lbench import _io
from lbench.errors import BudgetError, DataError
from lbench.pool import LabelPool


def make_pool():
    pool = LabelPool(10, num_classes=3)
    pool.add_labels(torch.tensor([4, 1]), torch.tensor([2, 0]), round=0)
    pool.add_labels(torch.tensor([7]), torch.tensor([1]), round=1)
    return pool


def test_labels_and_order():
    pool = make_pool()
    assert pool.num_labeled == 3 and pool.num_unlabeled == 7
    assert pool.labeled_index().tolist() == [1, 4, 7]
    assert pool.labels[[1, 4, 7]].tolist() == [0, 2, 1]
    assert pool.order == [(0, 4), (0, 1), (1, 7)]
    assert pool.label_counts() == [1, 1, 1]
    assert pool.selected_in_round(0) == [4, 1]
    assert 7 not in pool.unlabeled_index().tolist()


@pytest.mark.parametrize(
    ("index", "labels"),
    [([4], [0]), ([10], [0]), ([2, 2], [0, 0]), ([2], [3]), ([2, 3], [0])],
)
def test_invalid_labels_change_nothing(index, labels):
    pool = make_pool()
    before = pool.state_dict()
    with pytest.raises(ValueError):
        pool.add_labels(torch.tensor(index), torch.tensor(labels), round=2)
    assert pool.state_dict() == before


def test_save_load_round_trip(tmp_path):
    pool = make_pool()
    pool.pending = [3, 5]
    pool.save(tmp_path / "pool.json")
    back = LabelPool.load(tmp_path / "pool.json")
    assert back.state_dict() == pool.state_dict()
    assert torch.equal(back.labels, pool.labels)
    assert json.loads(json.dumps(pool.state_dict())) == pool.state_dict()  # plain Python


def test_state_dict_loads_with_weights_only(tmp_path):
    pool = make_pool()
    torch.save({"pool": pool.state_dict()}, tmp_path / "x.pt")
    state = torch.load(tmp_path / "x.pt", weights_only=True)["pool"]
    back = LabelPool(10, 3)
    back.load_state_dict(state)
    assert back.order == pool.order


def test_crash_between_write_and_rename_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "pool.json"
    make_pool().save(path)
    old = path.read_bytes()
    bigger = make_pool()
    bigger.add_labels(torch.tensor([0]), torch.tensor([2]), round=2)

    def crash(src, dst):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(_io.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        bigger.save(path)
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["pool.json"]  # temp file removed
    assert LabelPool.load(path).num_labeled == 3


def test_load_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        LabelPool.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not a valid LabelPool file"):
        LabelPool.load(bad)
    state = make_pool().state_dict()
    state["labels"][0] = 9
    bad.write_text(json.dumps(state))
    with pytest.raises(DataError, match="invalid LabelPool state"):
        LabelPool.load(bad)


def test_check_budget():
    pool = make_pool()
    pool.check_budget(7)
    for b in (0, -1, 8):
        with pytest.raises(BudgetError):
            pool.check_budget(b)


def test_atomic_write_json_is_readable(tmp_path):
    _io.atomic_write_json(tmp_path / "a" / "b.json", {"x": 1})
    assert _io.read_json(tmp_path / "a" / "b.json") == {"x": 1}
    assert os.listdir(tmp_path / "a") == ["b.json"]
