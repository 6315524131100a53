"""LabelPool's new optional state (class names, skipped, history, journal_seq) and old pool files."""

import json

import pytest
import torch

from lbench.errors import DataError
from lbench.pool import LabelPool

OLD = {"format": "lbench.LabelPool/1", "size": 6, "num_classes": 2, "order": [[0, 3]], "labels": [1], "pending": [4]}


def test_old_pool_file_loads_and_saves_unchanged(tmp_path):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(OLD, indent=1) + "\n")
    pool = LabelPool.load(path)
    assert pool.class_names is None and pool.skipped == {} and pool.history == [] and pool.journal_seq == 0
    assert pool.state_dict() == OLD
    before = path.read_bytes()
    pool.save(path)
    assert path.read_bytes() == before


def test_new_state_round_trips(tmp_path):
    pool = LabelPool(6, 2)
    pool.set_class_names(["a", "b"])
    pool.set_class_names(["a", "b", "c"])  # a new class
    pool.add_labels(torch.tensor([3]), torch.tensor([2]), round=0)
    pool.pending = [1, 2, 4]
    pool.mark_skipped([2], "skip")
    pool.mark_skipped([4], "unsure")
    pool.history.append({"seq": 1, "annotator": "ana"})
    pool.journal_seq = 1
    assert pool.num_classes == 3 and pool.pending == [1] and pool.excluded_from_selection() == [1, 2, 4]
    pool.save(tmp_path / "pool.json")
    back = LabelPool.load(tmp_path / "pool.json")
    assert back.state_dict() == pool.state_dict()
    assert back.skipped == {2: "skip", 4: "unsure"} and back.class_names == ["a", "b", "c"]
    back.add_labels(torch.tensor([2]), torch.tensor([0]), round=1)  # an answer replaces a skip
    assert back.skipped == {4: "unsure"} and back.next_round == 2


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p: p.mark_skipped([3], "skip"), "already labeled"),
        (lambda p: p.mark_skipped([9], "skip"), "must lie in"),
        (lambda p: p.mark_skipped([1], "later"), "answer must be one of"),
        (lambda p: p.set_class_names(["a"]), "1 class names for 2 classes"),
        (lambda p: p.set_class_names(["a", "a"]), "distinct"),
    ],
)
def test_invalid_updates_change_nothing(call, match):
    pool = LabelPool(6, 2)
    pool.add_labels(torch.tensor([3]), torch.tensor([1]), round=0)
    before = pool.state_dict()
    with pytest.raises(ValueError, match=match):
        call(pool)
    assert pool.state_dict() == before


@pytest.mark.parametrize(
    "extra",
    [{"classes": ["a"]}, {"skipped": [[3, "skip"]]}, {"skipped": [[1, "later"]]}, {"journal_seq": -1}, {"skipped": 5}],
)
def test_invalid_new_state_is_refused(tmp_path, extra):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps({**OLD, **extra}))
    with pytest.raises(DataError, match="invalid LabelPool state"):
        LabelPool.load(path)
