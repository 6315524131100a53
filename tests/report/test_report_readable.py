"""The report says what it describes, never compares the baseline with itself, and its verdicts agree."""

import csv
import math

import pytest

from lbench.report import write_report
from lbench.report.analysis import analyze
from lbench.report.ledger import load_ledger
from lbench.report.runinfo import run_info
from lbench.report.verdict import verdict
from tests.report.conftest import DESCRIPTION, MARGIN, RANDOM, records_for, write_run_json

# AUBC differences to RANDOM per seed 0.075, -0.0033, 0.0333: the paired t interval contains 0,
# but every seed reaches random's final accuracy at about 300 of 400 labels (savings 25-26%).
SAVER = {0: [0.50, 0.70, 0.80, 0.85], 1: [0.52, 0.50, 0.83, 0.84], 2: [0.48, 0.56, 0.79, 0.80]}
# Clearly higher AUBC (differences 0.133, 0.089, 0.108), but seed 1 ends at 0.815 < 0.82: never reaches random.
EARLY = {0: [0.50, 0.80, 0.85, 0.90], 1: [0.52, 0.80, 0.81, 0.815], 2: [0.48, 0.75, 0.80, 0.85]}


def rows(path):
    with open(path, newline="") as f:
        return {r["arm"]: r for r in csv.DictReader(f)}


def texts(rep):
    return {n: (rep.out_dir / n).read_text() for n in ("summary.md", "summary.csv", "cost.md", "report.html")}


@pytest.fixture
def mixed_report(make_run, full_records):
    recs = full_records + records_for(SAVER, "saver") + records_for(EARLY, "early")
    return write_report([make_run("mixed", recs)], echo=False)


def test_baseline_row_has_no_self_comparison(make_run, full_records):
    rep = write_report([make_run("run", full_records)], echo=False)
    r = rep.analysis.summaries["random"]
    assert r.verdict == "baseline" and r.savings is None and r.labels_needed is None and r.aubc_diff is None
    t = texts(rep)
    assert "| 65.00 ± 4.97 | — | baseline | — | — | — |" in t["summary.md"]
    assert "<td>—</td><td>baseline</td><td>—</td><td>—</td><td>—</td>" in t["report.html"]
    row = rows(rep.out_dir / "summary.csv")["random"]
    assert row["vs_baseline"] == "baseline"
    for col in ("aubc_diff_mean", "labels_needed_mean", "savings_mean", "savings_ci_low", "seeds_not_reached"):
        assert row[col] == "", col
    assert row["indistinguishable"] == "" and row["gain_vs_baseline_per_label_mean"] == ""
    assert "| random | 3 | 12 | 400 |" in t["cost.md"] and "| — |" in t["cost.md"]  # no gain over itself


def test_savings_significant_but_aubc_borderline_gives_consistent_verdict(mixed_report):
    s = mixed_report.analysis.summaries["saver"]
    assert s.aubc_diff.lo < 0 < s.aubc_diff.hi  # AUBC alone cannot tell it from random
    assert s.not_reached == 0 and s.savings.lo > 0.24  # yet every seed saves about a quarter of the labels
    assert s.verdict == "saves_labels"
    t = texts(mixed_report)
    assert "| ≈ random by AUBC; saves labels |" in t["summary.md"]
    assert rows(mixed_report.out_dir / "summary.csv")["saver"]["verdict"] == "≈ random by AUBC; saves labels"
    legend = "mixed = the two criteria disagree"
    assert t["summary.md"].count(legend) == 1  # the summary table's legend
    assert legend in t["report.html"] and '<ul class="legend">' in t["report.html"]


def test_better_needs_the_target_reached_in_every_seed(mixed_report):
    e = mixed_report.analysis.summaries["early"]
    assert e.aubc_diff.lo > 0 and e.not_reached == 1
    assert e.verdict == "mixed" and "not reached in 1/3 seeds" in e.verdict_detail
    assert mixed_report.analysis.summaries["margin"].verdict == "better"
    for s in mixed_report.analysis.summaries.values():  # no verdict contradicts the intervals it is made of
        if s.verdict == "better":
            assert s.aubc_diff.lo > 0 and s.not_reached == 0 and s.savings.hi >= 0
        if s.verdict == "indistinguishable":
            assert s.aubc_diff.contains(0.0) and (s.not_reached or s.savings.contains(0.0))
    assert "| mixed: higher AUBC, but target not reached in 1/3 seeds |" in texts(mixed_report)["summary.md"]


def test_not_reached_never_prints_infinity(mixed_report, make_run, full_records):
    bad = {s: [y[0]] + [v - 0.05 for v in y[1:]] for s, y in RANDOM.items()}
    reports = [mixed_report, write_report([make_run("bad", full_records + records_for(bad, "bad"))], echo=False)]
    for rep in reports:
        for name, text in texts(rep).items():
            assert "∞" not in text and "inf" not in text.replace("info", ""), name
    md = texts(reports[0])["summary.md"]
    assert "| not reached (1/3 seeds) | not reached (1/3 seeds) |" in md
    assert "| not reached (3/3 seeds) | not reached (3/3 seeds) |" in texts(reports[1])["summary.md"]
    assert rows(reports[0].out_dir / "summary.csv")["early"]["seeds_not_reached"] == "1"


def test_verdict_rules():
    from lbench.report.stats import Interval

    up, zero, down = Interval(0.1, 0.05, 0.15, 3), Interval(0.0, -0.1, 0.1, 3), Interval(-0.1, -0.15, -0.05, 3)
    saves, costs = Interval(0.2, 0.1, 0.3, 3), Interval(-math.inf, -math.inf, -math.inf, 3)
    assert verdict(up, saves, 0) == ("better", "")
    assert verdict(up, zero, 1)[0] == "mixed"
    assert verdict(zero, saves, 0) == ("saves_labels", "")
    assert verdict(zero, costs, 3) == ("needs_more_labels", "")
    assert verdict(zero, zero, 0) == ("indistinguishable", "")
    assert verdict(down, costs, 3) == ("worse", "") and verdict(down, saves, 0)[0] == "mixed"
    assert verdict(Interval(0.1, math.nan, math.nan, 1), saves, 0) == ("n/a", "1 seed")


def test_class_names_from_run_json_appear_in_coverage(make_run, full_records):
    run = make_run("run", full_records)
    write_run_json(run, DESCRIPTION)
    rep = write_report([run], echo=False)
    md = (rep.out_dir / "summary.md").read_text()
    assert "| imbalance (max/min) | cat | dog | bird |" in md and "class 0" not in md
    assert "<th>cat</th><th>dog</th><th>bird</th>" in (rep.out_dir / "report.html").read_text()
    cov = list(csv.DictReader(open(rep.out_dir / "coverage.csv")))
    assert [c["class_name"] for c in cov if c["arm"] == "margin"] == ["cat", "dog", "bird"]


@pytest.mark.parametrize("meta", [None, "no description", "not json", "description is a string"])
def test_old_runs_without_description_fall_back(make_run, full_records, meta):
    run = make_run("run", full_records)
    if meta == "no description":
        write_run_json(run)
    elif meta == "not json":
        (run / "run.json").write_text("{oops")
    elif meta == "description is a string":
        (run / "run.json").write_text('{"description": "fashion"}')
    rep = write_report([run], echo=False)
    md = (rep.out_dir / "summary.md").read_text()
    assert "| class 0 | class 1 | class 2 |" in md
    assert "Data set: not recorded; encoder: not recorded." in md
    assert "initial budget 100, budget per round 100, rounds 3" in md  # from the ledger


def test_header_names_dataset_encoder_budget_and_seeds(make_run, full_records, capsys, monkeypatch):
    titles = []
    from lbench.report import plots

    monkeypatch.setattr(plots.Figure, "suptitle", lambda self, t, **kw: titles.append(t))
    monkeypatch.setattr(plots.Axes, "set_title", lambda self, t, **kw: titles.append(t))
    run = make_run("run", full_records)
    write_run_json(run, DESCRIPTION)
    rep = write_report([run])
    printed = capsys.readouterr().out
    md, page = (rep.out_dir / "summary.md").read_text(), (rep.out_dir / "report.html").read_text()
    lines = [
        "Data set: fashion_mnist; encoder: clip-vit-b32.",
        "Labels: initial budget 100, budget per round 100, rounds 3; pool of 5000 items.",
        "Seeds: 0, 1, 2 (3).",
        "Arms: 2 (random (baseline), margin).",
        f"Run dirs: {run.resolve()}.",
    ]
    assert md.startswith("# lbench report") and md.index("## What this report describes") < md.index("## Summary")
    for line in lines:
        assert f"- {line}\n" in md and f"<li>{line}</li>" in page
    for line in lines[:3]:  # the console is short: what, then the key columns, then where the rest is
        assert line in printed
    assert "summary.md" in printed and len(printed.splitlines()) < 15
    assert len(titles) == 2 and all(t.startswith("fashion_mnist · clip-vit-b32: ") for t in titles)


def test_merged_runs_list_distinct_values(make_run):
    a = make_run("a", records_for({s: RANDOM[s] for s in (0, 1)}, "random") + records_for(MARGIN, "margin"))
    b = make_run("b", records_for({2: RANDOM[2]}, "random"))
    write_run_json(a, DESCRIPTION)
    write_run_json(b, DESCRIPTION, dataset="digits", embed_seconds=1.5)
    info = run_info(load_ledger([a, b]))
    assert info.datasets == ("fashion_mnist", "digits") and info.encoders == ("clip-vit-b32",)
    assert info.embed_seconds == 32.0 and info.run_dirs == (a.resolve(), b.resolve())
    rep = write_report([a, b], out=a.parent / "merged", echo=False)
    assert "Data set: fashion_mnist, digits; encoder: clip-vit-b32." in (rep.out_dir / "summary.md").read_text()


def test_embedding_is_one_shared_line(make_run, full_records):
    run = make_run("run", full_records)  # full_records: 12 s of embedding in the first record (random seed 0)
    rep = write_report([run], out=run / "old", echo=False)
    totals = {t.arm: t.total for t in rep.analysis.cost_totals}
    assert totals == {"random": pytest.approx(21.375), "margin": pytest.approx(21.375)}  # 12*1 + 12*.5 + 9*.375
    line = "Embedding (shared by all arms): 12.00 s"
    cost_md = (rep.out_dir / "cost.md").read_text()
    assert cost_md.count(line) == 1 and "All arms plus embedding: 54.75 s." in cost_md
    assert line in (rep.out_dir / "report.html").read_text() and line in (rep.out_dir / "summary.md").read_text()
    assert "embed (s)" not in cost_md
    cost = list(csv.DictReader(open(rep.out_dir / "cost.csv")))
    shared = [c for c in cost if c["arm"] == "(shared)"]
    assert len(shared) == 1 and float(shared[0]["embed_seconds"]) == float(shared[0]["total_seconds"]) == 12.0
    assert all(c["embed_seconds"] == "" for c in cost if c["arm"] != "(shared)")
    assert sum(float(c["total_seconds"]) for c in cost if c["arm"] == "random") == pytest.approx(4 * 1.5 + 3 * 0.375)
    # run.json's description is the run's embedding time; the records' embed_seconds are then not added
    write_run_json(run, DESCRIPTION)
    rep = write_report([run], out=run / "new", echo=False)
    assert rep.analysis.info.embed_seconds == 30.5
    assert {t.arm: t.total for t in rep.analysis.cost_totals} == totals
    assert "Embedding (shared by all arms): 30.50 s" in (rep.out_dir / "cost.md").read_text()


def test_one_seed_prints_no_na_interval_and_one_note(make_run, capsys):
    recs = records_for({0: RANDOM[0]}, "random") + records_for({0: MARGIN[0]}, "margin")
    rep = write_report([make_run("one", recs)])
    printed = capsys.readouterr().out
    md, page = (rep.out_dir / "summary.md").read_text(), (rep.out_dir / "report.html").read_text()
    for text in (printed, md, page, (rep.out_dir / "cost.md").read_text()):
        assert "± n/a" not in text and "[n/a]" not in text
    assert printed.count("One seed: no confidence intervals.") == 1
    summary = md[md.index("## Summary") : md.index("## Class coverage")]
    assert summary.count("One seed: no confidence intervals.") == 1
    assert "| random | 1 | 80.00 | 75.00 | 70.00 | 65.00 | — | baseline |" in md
    assert '<p class="note">One seed: no confidence intervals.</p>' in page


def test_analyze_without_run_dirs_uses_the_ledger(make_run, full_records):
    a = analyze(load_ledger([make_run("run", full_records)]))
    assert a.info.embed_seconds == 12.0 and a.info.datasets == () and a.info.title() == ""
