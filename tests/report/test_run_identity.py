"""The report merges rows of one arm name only from runs of one identity (``run_id``), unless --allow_mixed."""

import csv

import pytest

from lbench.errors import ReportError
from lbench.report import main
from lbench.report.ledger import load_ledger
from tests.report.conftest import MARGIN, RANDOM, records_for

A, B = "a1b2c3d4e5f60718", "99887766554433aa"


def _with_id(records, run_id):
    return [{**r, "run_id": run_id} for r in records]


def _two_runs(make_run, id_a=A, id_b=B):
    """Two runs of random and margin on seeds 0, 1 and 2 (the same seeds: other runs of one experiment would not)."""
    a = make_run("a", _with_id(records_for(RANDOM, "random") + records_for(MARGIN, "margin"), id_a))
    b = make_run("b", _with_id(records_for(RANDOM, "random") + records_for(MARGIN, "margin"), id_b))
    return a, b


def test_mixing_identities_under_one_arm_is_refused(make_run, capsys, tmp_path):
    a, b = _two_runs(make_run)
    rc = main([str(a), str(b), "--out", str(tmp_path / "rep")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("lbench: error: "), err
    assert "arm 'random'" in err and A in err and B in err and str(a) in err and str(b) in err
    assert "--allow_mixed" in err
    assert not (tmp_path / "rep").exists()


def test_allow_mixed_labels_each_arm_with_its_run(make_run, capsys, tmp_path):
    a, b = _two_runs(make_run)
    rc = main([str(a), str(b), "--out", str(tmp_path / "rep"), "--allow_mixed", "--no-html"])
    err = capsys.readouterr().err
    assert rc == 0, err
    with open(tmp_path / "rep" / "summary.csv", newline="") as f:
        arms = {row["arm"] for row in csv.DictReader(f)}
    assert arms == {"random [a1b2c3d4]", "margin [a1b2c3d4]", "random [99887766]", "margin [99887766]"}
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert f"margin [a1b2c3d4] is run {A} in {a}" in summary


def test_runs_of_one_identity_merge_by_arm_and_seed(make_run):
    a = make_run("a", _with_id(records_for({0: RANDOM[0]}, "random") + records_for({0: MARGIN[0]}, "margin"), A))
    b = make_run("b", _with_id(records_for({1: RANDOM[1]}, "random") + records_for({1: MARGIN[1]}, "margin"), A))
    c = make_run("c", _with_id(records_for({2: RANDOM[2]}, "bald"), B))  # another arm may come from another run
    led = load_ledger([a, b, c])
    assert led.arms == ["random", "margin", "bald"] and not led.mixed
    assert {r.run_id for r in led.records} == {A, B}


def test_old_ledgers_without_run_id_load_and_merge(make_run):
    a = make_run("a", records_for({0: RANDOM[0]}, "random") + records_for({0: MARGIN[0]}, "margin"))
    b = make_run("b", records_for({1: RANDOM[1]}, "random"))
    led = load_ledger([a, b])
    assert led.arms == ["random", "margin"] and {r.run_id for r in led.records} == {None}
    assert sorted({r.seed for r in led.records if r.arm == "random"}) == [0, 1]


def test_a_malformed_run_id_is_named(make_run):
    a = make_run("a", _with_id(records_for({0: RANDOM[0]}, "random"), 7))
    with pytest.raises(ReportError, match=r"rounds.jsonl:1: 'run_id' must be a non-empty string"):
        load_ledger([a])
