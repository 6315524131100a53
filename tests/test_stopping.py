"""The stabilizing-predictions stop signal: stop set, Cohen's κ, the rule, the select helper, the run's records."""

import json
import math
import shutil

import pytest
import torch
from sklearn.metrics import cohen_kappa_score

from lbench.stopping import (
    STOP_FILE,
    StopState,
    cohen_kappa,
    record_kappa,
    rule_state,
    select_stop_signal,
    stop_predictions,
    stop_set,
)
from tests.conftest import CONFIGS, run_cli


@pytest.mark.filterwarnings("ignore::UserWarning")  # sklearn on one-item vectors
@pytest.mark.parametrize(("n", "k", "seed"), [(1, 3, 0), (2, 2, 1), (50, 2, 2), (500, 10, 3), (2000, 37, 4)])
def test_kappa_equals_sklearn(n, k, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, k, (n,), generator=g)
    b = torch.where(torch.rand(n, generator=g) < 0.7, a, torch.randint(0, k, (n,), generator=g))
    want = cohen_kappa_score(a.numpy(), b.numpy())
    if math.isnan(want):  # one item: both vectors constant on the same class
        assert cohen_kappa(a, b) == 1.0
    else:
        assert cohen_kappa(a, b) == pytest.approx(want, abs=1e-12)
        assert cohen_kappa(a.tolist(), b.tolist()) == pytest.approx(want, abs=1e-12)


def test_kappa_edge_cases():
    assert cohen_kappa([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)
    assert cohen_kappa([0, 1, 2, 2], [0, 1, 2, 2]) == 1.0
    assert cohen_kappa([3, 3, 3], [3, 3, 3]) == 1.0  # sklearn: NaN; identical predictions agree
    assert cohen_kappa([3, 3, 3], [3, 3, 1]) == pytest.approx(cohen_kappa_score([3, 3, 3], [3, 3, 1]))  # 0
    assert cohen_kappa([5, 5, 9], [9, 9, 9]) == pytest.approx(cohen_kappa_score([5, 5, 9], [9, 9, 9]))  # classes unused
    for a, b in (([], []), ([0, 1], [0]), ([0, -1], [0, 1])):
        with pytest.raises(ValueError):
            cohen_kappa(a, b)


def test_stop_set_is_fixed_by_the_seed_and_pool_size_alone():
    s = stop_set(10_000, 0)
    assert len(s) == 2000 and len(set(s.tolist())) == 2000 and torch.equal(s, s.sort().values)
    assert torch.equal(s, stop_set(10_000, 0)) and not torch.equal(s, stop_set(10_000, 1))
    initial = torch.randperm(10_000, generator=torch.Generator().manual_seed(0))[:2000]  # the run's initial set
    assert not torch.equal(s, initial.sort().values)
    assert torch.equal(stop_set(150, 3), torch.arange(150))  # a small pool: all of it
    assert len(stop_set(10_000, 0, size=10)) == 10
    with pytest.raises(ValueError):
        stop_set(0, 0)
    preds = torch.arange(10_000) % 7
    assert stop_predictions(preds, 0) == (s % 7).tolist()
    assert stop_predictions(None, 0) is None


@pytest.mark.parametrize(
    ("kappas", "streak", "fired_at"),
    [
        ([], 0, None),
        ([None], 0, None),
        ([None, 0.995, 0.999, 0.99], 3, 3),  # the threshold itself counts
        ([None, 0.995, 0.999, 0.9899], 0, None),
        ([None, 0.99, 0.98, 0.99, 1.0, 0.999, 0.5], 0, 5),  # fired once, then κ dropped: fired_at stays
        ([None, 0.99, None, 0.99, 0.99], 2, None),  # a missing round breaks the run
        ([None, 0.999, 0.999, 0.999, 0.999], 4, 3),
    ],
)
def test_rule(kappas, streak, fired_at):
    state = rule_state(kappas)
    assert (state.streak, state.fired_at) == (streak, fired_at)
    assert state.fired == (streak >= 3)
    assert state.kappa == (kappas[-1] if kappas else None)
    assert rule_state([None, 0.9, 0.9], threshold=0.9, window=2).fired_at == 2


def test_state_line_says_it_is_a_suggestion():
    first = rule_state([None]).line()
    assert "next round" in first and "not enforced" in first
    line = rule_state([None, 0.5, 0.995]).line()
    assert "κ = 0.9950" in line and "1/3 rounds in a row" in line and "not enforced" in line
    line = rule_state([None, 0.995, 0.999, 0.991]).line()
    assert "you may stop labeling" in line and "not enforced" in line


def test_record_kappa_reads_the_previous_round_of_the_same_arm_and_seed():
    def rec(arm, seed, rnd, preds):
        return {"arm": arm, "seed": seed, "round": rnd, "stop_predictions": preds}

    records = [rec("a", 0, 0, [0, 1, 2, 2]), rec("b", 0, 0, [2, 2, 2, 2]), rec("a", 1, 0, [1, 1, 1, 1])]
    assert record_kappa(records, rec("a", 0, 0, [0, 1, 2, 2])) is None  # round 0
    want = round(cohen_kappa_score([0, 1, 2, 2], [0, 1, 2, 1]), 6)
    assert record_kappa(records, rec("a", 0, 1, [0, 1, 2, 1])) == want
    assert record_kappa(records, rec("a", 0, 1, None)) is None  # rank != 0
    assert record_kappa([{**records[0], "stop_predictions": None}], rec("a", 0, 1, [0, 1, 2, 1])) is None
    older = {k: v for k, v in records[0].items() if k != "stop_predictions"}  # a record of an older lbench
    assert record_kappa([older], rec("a", 0, 1, [0, 1, 2, 1])) is None


def test_select_helper_saves_compares_and_keeps_the_stop_set(tmp_path):
    g = torch.Generator().manual_seed(0)
    preds = torch.randint(0, 5, (3000,), generator=g)
    state = select_stop_signal(tmp_path, preds, seed=7, num_labeled=10)
    assert isinstance(state, StopState) and state.kappa is None and not state.fired and state.note == ""
    saved = json.loads((tmp_path / STOP_FILE).read_text())
    assert saved["indices"] == stop_set(3000, 7).tolist() and saved["seed"] == 7
    assert saved["predictions"] == preds[stop_set(3000, 7)].tolist()
    assert saved["history"] == [{"num_labeled": 10, "kappa": None}]

    changed = preds.clone()
    changed[:600] = (changed[:600] + 1) % 5
    state = select_stop_signal(tmp_path, changed, seed=7, num_labeled=20)
    idx = stop_set(3000, 7)
    assert state.kappa == pytest.approx(cohen_kappa_score(preds[idx].numpy(), changed[idx].numpy()), abs=1e-6)
    assert state.kappas[0] is None and state.streak == 0

    before = (tmp_path / STOP_FILE).read_bytes()  # the same labels again: not a new round
    again = select_stop_signal(tmp_path, preds, seed=7, num_labeled=20)
    assert again.kappas == state.kappas and (tmp_path / STOP_FILE).read_bytes() == before

    grown = torch.cat([changed, torch.zeros(500, dtype=torch.long)])  # new items appended; another seed
    for n in (30, 40, 50):
        state = select_stop_signal(tmp_path, grown, seed=99, num_labeled=n)
    assert state.kappas[2:] == (1.0, 1.0, 1.0) and state.fired and state.fired_at == 4
    saved = json.loads((tmp_path / STOP_FILE).read_text())
    assert saved["indices"] == idx.tolist() and saved["seed"] == 7  # fixed once chosen
    assert [h["num_labeled"] for h in saved["history"]] == [10, 20, 30, 40, 50]
    assert [p.name for p in tmp_path.iterdir()] == [STOP_FILE]  # no temp file left behind


@pytest.mark.parametrize("text", ["{not json", '{"indices": [1], "predictions": [], "history": []}', "[]"])
def test_select_helper_starts_over_on_a_bad_file(tmp_path, text):
    (tmp_path / STOP_FILE).write_text(text)
    state = select_stop_signal(tmp_path, torch.zeros(100, dtype=torch.long), seed=0)
    assert state.kappa is None and "starts over" in state.note
    assert json.loads((tmp_path / STOP_FILE).read_text())["indices"] == list(range(100))


def test_select_helper_starts_over_when_the_pool_shrank(tmp_path):
    select_stop_signal(tmp_path, torch.zeros(100, dtype=torch.long), seed=0)
    state = select_stop_signal(tmp_path, torch.zeros(50, dtype=torch.long), seed=0)
    assert state.kappa is None and "past the pool's 50 items" in state.note and len(state.kappas) == 1


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "rounds.jsonl").read_text().splitlines()]


def test_run_records_kappa_and_a_resumed_run_records_the_same(smoke_run, tmp_path, capsys):
    full, cache = smoke_run  # random + margin, seeds 0 and 1, rounds 0..3
    want = _records(full)
    pool_size = json.loads((full / "run.json").read_text())["pool_size"]
    for r in want:
        assert len(r["stop_predictions"]) == min(2000, pool_size)
        if r["round"] == 0:
            assert r["stop_kappa"] is None
        else:
            prev = next(p for p in want if (p["arm"], p["seed"], p["round"]) == (r["arm"], r["seed"], r["round"] - 1))
            assert r["stop_kappa"] == round(cohen_kappa_score(prev["stop_predictions"], r["stop_predictions"]), 6)
    run_dir = tmp_path / "run"  # a crash after margin seed 0 round 1: rounds.jsonl holds the first 6 rounds
    shutil.copytree(full, run_dir)
    lines = (run_dir / "rounds.jsonl").read_text().splitlines(keepends=True)
    assert [(r["arm"], r["seed"], r["round"]) for r in want[4:6]] == [("margin", 0, 0), ("margin", 0, 1)]
    (run_dir / "rounds.jsonl").write_text("".join(lines[:6]))
    rc, _, err = run_cli(["run", "-c", str(CONFIGS / "smoke.yaml"), "--out_dir", str(run_dir),
                          "--data.init_args.cache_dir", str(cache), "--report", "false"], capsys)  # fmt: skip
    assert rc == 0, err
    got = _records(run_dir)
    assert [(r["arm"], r["seed"], r["round"]) for r in got] == [(r["arm"], r["seed"], r["round"]) for r in want]
    for g, w in zip(got, want, strict=True):
        assert g["stop_predictions"] == w["stop_predictions"] and g["stop_kappa"] == w["stop_kappa"]
