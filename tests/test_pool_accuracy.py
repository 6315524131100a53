"""Pool accuracy (the paper's): labels given plus the model's predictions on the rest, against the truth."""

import json

import torch

from lbench.experiment import pool_accuracy
from lbench.oracle import Oracle, SimulatedOracle
from lbench.pool import LabelPool


def test_pool_accuracy_by_hand_and_not_a_query():
    truth = torch.tensor([0, 1, 2, 0, 1, 2])
    oracle = SimulatedOracle(truth)
    pool = LabelPool(6, 3)
    pool.add_labels(torch.tensor([0, 1]), torch.tensor([0, 1]), round=0)  # labels given: both right
    predictions = torch.tensor([2, 2, 2, 1, 1, 0])  # wrong on labeled items (ignored), right on 2 and 4
    assert abs(pool_accuracy(pool, predictions, oracle) - 4 / 6) < 1e-7  # items 0, 1 (labels) + 2, 4 (predictions)
    assert oracle.num_queries == 0  # asking for the pool accuracy is not a label query


def test_a_person_oracle_has_no_pool_accuracy():
    class Person(Oracle):
        def query(self, index):
            return torch.zeros_like(index)

    assert pool_accuracy(LabelPool(3, 2), torch.zeros(3, dtype=torch.long), Person()) is None


def test_every_round_records_pool_accuracy(smoke_run):
    out, _ = smoke_run
    records = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    for r in records:
        labeled = r["num_labeled"] / 1258  # digits pool size
        assert labeled <= r["pool_acc"] <= 1.0  # the labeled items count as right
        assert 0.0 <= r["test_min_class_acc"] <= r["test_balanced_acc"]
    last = [r for r in records if r["round"] == 3]
    assert len(last) == 4 and all(r["score_seconds"] > 0 for r in last)  # the last round scores too
