"""Reading, validating and merging ledgers."""

import json

import pytest

from lbench.errors import ReportError
from lbench.report.ledger import load_ledger
from tests.report.conftest import MARGIN, RANDOM, record, records_for


def test_reads_records_and_tolerates_unknown_keys(make_run, full_records):
    full_records[3]["something_new"] = {"nested": [1, 2]}
    led = load_ledger([make_run("run", full_records)])
    assert len(led.records) == 24 and not led.partial and led.missing == []
    assert led.arms == ["random", "margin"]
    assert led.metrics == ("test_acc", "test_balanced_acc", "test_macro_f1")
    r = led.records[0]
    assert (r.arm, r.seed, r.round, r.num_labeled, r.rounds_total) == ("random", 0, 0, 100, 3)
    assert r.seconds["embed_seconds"] == 12.0 and r.num_selected == 100 and r.label_counts == (50, 25, 25)
    assert r.source.endswith("rounds.jsonl:1")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"arm": "random", "seed": 0,', "not valid JSON"),
        ("[1, 2, 3]", "expected a JSON object"),
        ('{"arm": "random", "seed": 0, "round": 1, "num_labeled": 200, "rounds_total": 3}', "test_acc"),
        (json.dumps(record("random", 0, 1, 60.0)), "'test_acc' must be a fraction in [0, 1], got 60.0"),
        (json.dumps(record("random", 0, 1, 0.6, {"seed": "0"})), "'seed' must be an integer"),
        (json.dumps(record("random", 0, 1, 0.6, {"round": 7})), "past rounds_total 3"),
        (json.dumps(record("random", 0, 1, 0.6, {"train_seconds": -1})), "'train_seconds'"),
        (json.dumps(record("random", 0, 1, 0.6, {"label_counts": [1, "a"]})), "'label_counts'"),
        (json.dumps(record("random", 0, 1, 0.6, {"test_macro_f1": None})), "'test_macro_f1'"),
        (json.dumps(record("random", 0, 1, 0.6, {"pool_acc": 1.5})), "'pool_acc' must be a fraction in [0, 1]"),
    ],
)
def test_malformed_line_names_file_and_line(make_run, line, message):
    recs = [json.dumps(record("random", 0, 0, 0.5)), "", line]  # a blank line 2 is skipped, not an error
    run = make_run("bad", recs)
    with pytest.raises(ReportError) as e:
        load_ledger([run])
    assert f"{run / 'rounds.jsonl'}:3:" in str(e.value)
    assert message in str(e.value)


def test_missing_required_key_is_named(make_run):
    rec = record("random", 0, 0, 0.5)
    del rec["num_labeled"]
    run = make_run("bad", [rec])
    with pytest.raises(ReportError, match=r"rounds.jsonl:1: missing required key\(s\) num_labeled"):
        load_ledger([run])


def test_duplicate_round_and_shrinking_labels_are_errors(make_run):
    run = make_run("dup", [record("random", 0, 0, 0.5), record("random", 0, 0, 0.5)])
    with pytest.raises(ReportError, match=r"rounds.jsonl:2: arm 'random' seed 0 round 0 already recorded at .*:1"):
        load_ledger([run])
    run = make_run("shrink", [record("random", 0, 0, 0.5), record("random", 0, 1, 0.6, {"num_labeled": 100})])
    with pytest.raises(ReportError, match="num_labeled 100 at round 1 does not exceed 100"):
        load_ledger([run])


def test_missing_or_empty_ledger(tmp_path, make_run):
    with pytest.raises(ReportError, match="does not exist"):
        load_ledger([tmp_path / "nope"])
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ReportError, match="has no rounds.jsonl"):
        load_ledger([tmp_path / "empty_dir"])
    with pytest.raises(ReportError, match="no finished rounds yet"):
        load_ledger([make_run("empty", [])])


def test_partial_run_lists_missing_rounds(make_run):
    recs = records_for(RANDOM, "random") + records_for(MARGIN, "margin", skip={(2, 2), (2, 3), (1, 3)})
    led = load_ledger([make_run("partial", recs)])
    assert led.partial
    assert led.missing == [("margin", 1, 3), ("margin", 2, 2), ("margin", 2, 3)]


def test_run_json_adds_arms_not_started_yet(make_run):
    run = make_run("run", records_for({0: RANDOM[0]}, "random"))
    settings = {"arms": {"random": "Random()", "badge": "Badge()"}, "seeds": [0], "rounds": 3}
    (run / "run.json").write_text(json.dumps({"settings": settings, "pool_size": 1000}))
    led = load_ledger([run])
    assert led.missing == [("badge", 0, k) for k in range(4)]


def test_merges_runs_and_reads_a_directory_once(make_run):
    a = make_run("a", records_for(RANDOM, "random"))
    b = make_run("b", records_for(MARGIN, "margin"))
    led = load_ledger([a, b, a])
    assert len(led.records) == 24 and led.arms == ["random", "margin"] and len(led.sources) == 2
    c = make_run("c", records_for({0: RANDOM[0]}, "random"))
    with pytest.raises(ReportError, match="already recorded at"):
        load_ledger([a, c])
