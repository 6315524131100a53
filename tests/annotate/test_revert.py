"""Undo in the journal: a ``revert`` entry takes answers back, validated, replayed after a crash."""

from __future__ import annotations

import json

import pytest

from lbench import _io
from lbench.errors import DataError
from lbench.label import import_answers, read_journal, revert_answers
from lbench.label.formats import Parsed
from lbench.pool import LabelPool
from tests.label.conftest import BATCH, make_project


def answers(pool_file, index, labels):
    return import_answers(pool_file, Parsed.from_answers(index, labels), annotator="ana")


def test_revert_takes_answers_back_and_the_items_are_pending_again(tmp_path):
    pool_file = make_project(tmp_path / "p")
    before = LabelPool.load(pool_file).state_dict()
    answers(pool_file, [4, 5, 6], [2, "skip", "unsure"])
    done = revert_answers(pool_file, [4, 5], expect={4: 2, 5: "skip"}, annotator="bo", source="page")
    assert done.answers == [(4, 2), (5, "skip")] and done.seq == 2
    pool = LabelPool.load(pool_file)
    assert int(pool.labels[4]) == -1 and pool.skipped == {6: "unsure"}
    assert pool.pending == [4, 5, 7, 8] and pool.order == [(r, i) for r, i in before["order"]]
    entry = read_journal(pool_file.parent / "labels.journal.jsonl")[-1]
    assert entry["format"] == "revert" and entry["revert"] == [[4, 2], [5, "skip"]] and entry["rows"] == []
    assert entry["annotator"] == "bo" and entry["source"] == "page"
    assert pool.history[-1]["reverted"] == 2 and "reverted" not in pool.history[0]
    revert_answers(pool_file, [6])  # everything taken back: the pool is as before, plus the history
    state = LabelPool.load(pool_file).state_dict()
    assert {k: v for k, v in state.items() if k not in ("history", "journal_seq")} == before
    answers(pool_file, [4], ["skip"])  # an item taken back can be answered again
    assert LabelPool.load(pool_file).skipped == {4: "skip"}


@pytest.mark.parametrize(
    ("index", "expect", "message"),
    [
        ([7], None, "item 7: it has no answer"),
        ([4], {4: 1}, "holds 2 now, not 1"),
        ([99], None, "not in the pool"),
        ([4, 4], None, "repeated"),
        ([], None, "no items"),
    ],
)
def test_a_bad_revert_writes_nothing(tmp_path, index, expect, message):
    pool_file = make_project(tmp_path / "p")
    answers(pool_file, [4], [2])
    files = {p.name: p.read_bytes() for p in pool_file.parent.iterdir()}
    with pytest.raises(DataError, match=message):
        revert_answers(pool_file, index, expect=expect)
    assert {p.name: p.read_bytes() for p in pool_file.parent.iterdir()} == files


def test_a_revert_journaled_but_not_written_is_replayed(tmp_path, monkeypatch):
    pool_file = make_project(tmp_path / "p")
    answers(pool_file, [4, 5], [0, "skip"])

    def crash(src, dst):
        raise OSError("simulated crash before rename")

    with monkeypatch.context() as m:
        m.setattr(_io.os, "replace", crash)
        with pytest.raises(OSError, match="simulated crash"):
            revert_answers(pool_file, [5])
    assert LabelPool.load(pool_file).skipped == {5: "skip"}  # pool.json is behind its journal
    answers(pool_file, [6], [1])  # the next writer replays the revert first
    pool = LabelPool.load(pool_file)
    assert pool.skipped == {} and pool.journal_seq == 3 and sorted(pool.pending) == [5, 7, 8]


def test_replay_refuses_a_revert_that_does_not_fit(tmp_path):
    pool_file = make_project(tmp_path / "p")
    answers(pool_file, [4], [0])
    journal = pool_file.parent / "labels.journal.jsonl"
    bad = {"seq": 2, "time": "t", "annotator": "x", "source": "s", "format": "revert", "round": 1, "rows": [],
           "revert": [[4, 1]]}  # fmt: skip
    with journal.open("a") as f:
        f.write(json.dumps(bad) + "\n")
    with pytest.raises(DataError, match="entry 2 does not fit the pool: item 4 holds 0, not the reverted answer 1"):
        answers(pool_file, [5], [1])
    assert BATCH == [4, 5, 6, 7, 8]
