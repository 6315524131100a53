"""``lbench label --pool P --revert I,J``: answers taken back through the journal, or one line and nothing written."""

import json

import pytest

from lbench.pool import LabelPool
from tests.label.conftest import label, snapshot


def test_revert_takes_answers_back_and_makes_the_items_pending(project, tmp_path, capsys):
    answers = tmp_path / "answers.csv"
    answers.write_text("index,label\n4,dog\n5,skip\n6,bird\n")
    assert label([answers, "--pool", project], capsys)[0] == 0
    rc, out, err = label(["--pool", project, "--revert", "4,5", "--annotator", "ana"], capsys)
    assert rc == 0, err
    assert out.strip() == "reverted 2 answers: 4 (dog), 5 (skip); pending again; pool: 3 labeled of 20, 4 pending"
    pool = LabelPool.load(project)
    assert sorted(pool.pending) == [4, 5, 7, 8] and 5 not in pool.skipped
    assert pool.labels[6] == 2 and pool.labels[4] == -1  # bird stays, dog is gone
    entries = [json.loads(line) for line in (project.parent / "labels.journal.jsonl").read_text().splitlines()]
    assert entries[-1]["format"] == "revert" and entries[-1]["revert"] == [[4, 1], [5, "skip"]]
    assert entries[-1]["annotator"] == "ana" and entries[-1]["source"] == "lbench label --revert"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--revert", "4"], "cannot revert item 4: it has no answer"),
        (["--revert", "4,x"], "--revert takes pool indices separated by commas, got '4,x'"),
        (["--revert", "99"], "cannot revert item 99: not in the pool (0 .. 19)"),
        (["--revert", "0", "--dry_run"], "--revert takes no --dry_run: it only takes answers back"),
        (["--revert", ""], "nothing to revert: no items given"),
    ],
)
def test_a_bad_revert_is_one_line_and_writes_nothing(project, capsys, extra, message):
    before = snapshot(project.parent)
    rc, out, err = label(["--pool", project, *extra], capsys)
    assert rc == 2 and out == "" and err == f"lbench: error: {message}\n"
    assert snapshot(project.parent) == before
