"""Synthetic ledgers with known curves (hand-computed values in the tests)."""

import json
from pathlib import Path

import pytest

X = [100, 200, 300, 400]  # initial 100 labels, budget 100, rounds 0..3

# Every arm of a seed starts from the same initial set: same value at 100 labels.
RANDOM = {0: [0.50, 0.60, 0.70, 0.80], 1: [0.52, 0.62, 0.72, 0.82], 2: [0.48, 0.58, 0.68, 0.78]}
MARGIN = {0: [0.50, 0.70, 0.80, 0.85], 1: [0.52, 0.75, 0.85, 0.90], 2: [0.48, 0.65, 0.75, 0.80]}


def record(arm, seed, rnd, acc, extra=None):
    rec = {
        "arm": arm,
        "seed": seed,
        "round": rnd,
        "num_labeled": X[rnd],
        "budget": 100,
        "num_classes": 3,
        "test_acc": acc,
        "test_balanced_acc": acc - 0.05,
        "test_macro_f1": acc - 0.10,
        "embed_seconds": 0.0,
        "train_seconds": 1.0,
        "test_seconds": 0.5,
        "score_seconds": 0.25 if rnd < 3 else 0.0,
        "select_seconds": 0.125 if rnd < 3 else 0.0,
        "selected": list(range(100)) if rnd < 3 else [],
        "label_counts": [X[rnd] // 2, X[rnd] // 4, X[rnd] // 4] if arm == "random" else [X[rnd] - 2 * rnd, rnd, rnd],
        "query": f"{arm.capitalize()}()",
        "rounds_total": 3,
    }
    rec.update(extra or {})
    return rec


def records_for(curves, arm, skip=()):
    return [
        record(arm, seed, rnd, acc)
        for seed, ys in curves.items()
        for rnd, acc in enumerate(ys)
        if (seed, rnd) not in skip
    ]


def write_ledger(run_dir, records):
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    (run_dir / "rounds.jsonl").write_text(text)
    return run_dir


@pytest.fixture
def make_run(tmp_path):
    def make(name, records):
        return write_ledger(tmp_path / name, records)

    return make


@pytest.fixture
def full_records():
    recs = records_for(RANDOM, "random") + records_for(MARGIN, "margin")
    recs[0]["embed_seconds"] = 12.0  # the cache was built before the first round
    return recs


DESCRIPTION = {
    "dataset": "fashion_mnist",
    "encoder": "clip-vit-b32",
    "class_names": ["cat", "dog", "bird"],
    "budget": 100,
    "initial_budget": 100,
    "seeds": [0, 1, 2],
    "rounds": 3,
    "pool_size": 5000,
    "embed_seconds": 30.5,
}


def write_run_json(run_dir, description=None, **fields):
    """run.json as `lbench run` writes it; ``description`` None leaves the key out (an old run)."""
    meta = {"settings": {"arms": {}, "seeds": [], "rounds": 3, "budget": 100, "initial_budget": 100}}
    if description is not None:
        meta["description"] = {**description, **fields}
    (Path(run_dir) / "run.json").write_text(json.dumps(meta))
