"""write_report and the report command on synthetic runs with known curves."""

import csv
import math

import numpy as np
import pytest
from matplotlib.image import imread

from lbench.errors import ReportError
from lbench.report import main, write_report
from tests.report.conftest import MARGIN, RANDOM, record, records_for, write_ledger

T2 = 4.302652729749462  # scipy.stats.t.ppf(0.975, 2)


def rows(path):
    with open(path, newline="") as f:
        return {r["arm"]: r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    recs = records_for(RANDOM, "random") + records_for(MARGIN, "margin")
    recs[0]["embed_seconds"] = 12.0
    return write_report([write_ledger(tmp_path_factory.mktemp("report") / "run", recs)], echo=False)


def test_aubc_savings_and_intervals_equal_hand_computed_values(report):
    a = report.analysis
    assert a.arms == ["random", "margin"] and a.baseline == "random" and a.final_labels == 400
    r, m = a.summaries["random"], a.summaries["margin"]
    # AUBC = trapezoid of the mean curve over 100..400 / 300; mean margin curve 0.50, 0.70, 0.80, 0.85
    assert m.aubc.mean == pytest.approx((100 * (0.25 + 0.70 + 0.80 + 0.425)) / 300) == pytest.approx(0.725)
    assert r.aubc.mean == pytest.approx(0.65)
    # per-seed random AUBC 0.65, 0.67, 0.63 (sd 0.02)
    assert r.aubc.hi - r.aubc.mean == pytest.approx(T2 * 0.02 / math.sqrt(3))
    # paired AUBC differences 0.075, 0.10, 0.05 (sd 0.025): clearly better than random
    half = T2 * 0.025 / math.sqrt(3)
    assert (m.aubc_diff.mean, m.aubc_diff.lo, m.aubc_diff.hi) == (
        pytest.approx(0.075),
        pytest.approx(0.075 - half),
        pytest.approx(0.075 + half),
    )
    assert m.verdict == "better" and r.verdict == "baseline"
    # labels to reach random's final accuracy of the same seed (0.80, 0.82, 0.78):
    # seed 0 reaches 0.80 at 300; seed 1: 200 + (0.82 - 0.75) / 0.10 * 100 = 270; seed 2: 300 + 0.03 / 0.05 * 100 = 360
    assert m.labels_needed.mean == pytest.approx((300 + 270 + 360) / 3)
    assert (m.labels_needed.lo, m.labels_needed.hi) == (pytest.approx(270), pytest.approx(360))
    # savings 1 - needed / 400 = 0.25, 0.325, 0.10; bootstrap over 3 seeds: [min, max]
    assert m.savings.mean == pytest.approx(0.225)
    assert (m.savings.lo, m.savings.hi) == (pytest.approx(0.10), pytest.approx(0.325))
    assert m.not_reached == 0
    assert r.savings is None and r.aubc_diff is None and r.labels_needed is None  # no self-comparison
    # final accuracy 0.85, 0.90, 0.80 (sd 0.05); gain over random per label (0.05, 0.08, 0.02) / 300
    assert m.final["test_acc"].mean == pytest.approx(0.85)
    assert m.final["test_acc"].hi == pytest.approx(0.85 + T2 * 0.05 / math.sqrt(3))
    assert m.gain_vs_baseline.mean == pytest.approx(0.05 / 300)
    assert m.gain_per_label.mean == pytest.approx(0.35 / 300)


def test_summary_files_hold_the_same_numbers(report):
    out = report.out_dir
    assert out == report.analysis.ledger.sources[0].parent / "report"
    expected = {"summary.md", "summary.csv", "curves.csv", "coverage.csv", "cost.md", "cost.csv", "curves.png"}
    assert expected | {"vs_baseline.png", "report.html"} == set(report.files)
    s = rows(out / "summary.csv")
    assert float(s["margin"]["savings_mean"]) == pytest.approx(0.225)
    assert float(s["margin"]["savings_ci_low"]) == pytest.approx(0.10)
    assert float(s["margin"]["aubc_mean"]) == pytest.approx(0.725)
    assert s["margin"]["vs_baseline"] == "better" and s["margin"]["indistinguishable"] == "False"
    assert s["random"]["vs_baseline"] == "baseline"
    md = (out / "summary.md").read_text()
    assert "| margin | 3 | 85.00 ± 12.42 |" in md  # 100 * T2 * 0.05 / sqrt(3) = 12.42
    assert "| 72.50 ± " in md and "| 7.50 ± 6.21 | better | 310 [270, 360] | 22.5 [10.0, 32.5] |" in md
    assert "Status: complete, 24 rounds finished." in md
    curves = list(csv.DictReader(open(out / "curves.csv")))
    assert len(curves) == 8
    row = next(c for c in curves if c["arm"] == "random" and c["num_labeled"] == "400")
    assert float(row["test_acc_mean"]) == pytest.approx(0.80) and row["n_seeds"] == "3"
    assert float(row["test_acc_ci_high"]) == pytest.approx(0.80 + T2 * 0.02 / math.sqrt(3))


def test_raw_curves_never_best_so_far(make_run):
    dip = {0: [0.5, 0.9, 0.6, 0.7]}  # a peak at 200 labels must not carry over
    rep = write_report([make_run("dip", records_for(dip, "random"))], echo=False)
    assert [b.values["test_acc"].mean for b in rep.analysis.budgets["random"]] == [0.5, 0.9, 0.6, 0.7]


def test_random_relabelled_is_indistinguishable(make_run, full_records):
    noisy = {s: [y[0]] + [v + d for v, d in zip(y[1:], (0.01, -0.01, 0.005), strict=True)] for s, y in RANDOM.items()}
    noisy[1] = [RANDOM[1][0]] + [v - 0.012 for v in RANDOM[1][1:]]
    recs = full_records + records_for(RANDOM, "random_copy") + records_for(noisy, "noisy")
    rep = write_report([make_run("run", recs)], echo=False)
    copy, noise = rep.analysis.summaries["random_copy"], rep.analysis.summaries["noisy"]
    assert copy.verdict == "indistinguishable"
    assert (copy.aubc_diff.mean, copy.aubc_diff.lo, copy.aubc_diff.hi) == (0.0, 0.0, 0.0)
    assert copy.savings.mean == 0.0
    assert noise.verdict == "indistinguishable" and noise.aubc_diff.lo < 0 < noise.aubc_diff.hi
    assert rep.analysis.summaries["margin"].verdict == "better"
    s = rows(rep.out_dir / "summary.csv")
    assert s["random_copy"]["indistinguishable"] == "True" and s["margin"]["indistinguishable"] == "False"
    assert "| ≈ random |" in (rep.out_dir / "summary.md").read_text()


def test_worse_arm_and_target_not_reached(make_run, full_records):
    bad = {s: [y[0]] + [v - 0.05 for v in y[1:]] for s, y in RANDOM.items()}
    rep = write_report([make_run("run", full_records + records_for(bad, "bad"))], echo=False)
    b = rep.analysis.summaries["bad"]
    assert b.verdict == "worse" and b.not_reached == 3
    assert b.savings.mean == -math.inf and b.labels_needed.mean == math.inf
    assert "not reached (3/3 seeds)" in (rep.out_dir / "summary.md").read_text()
    bad_row = rows(rep.out_dir / "summary.csv")["bad"]
    assert bad_row["savings_mean"] == "" and bad_row["seeds_not_reached"] == "3"


def test_partial_run_reports_finished_rounds(make_run):
    recs = records_for(RANDOM, "random") + records_for(MARGIN, "margin", skip={(2, 3)})
    rep = write_report([make_run("partial", recs)], echo=False)
    assert rep.partial and rep.missing == [("margin", 2, 3)]
    a = rep.analysis
    assert a.final_labels == 300  # compared on what every arm and seed finished
    assert list(a.grid) == [100, 200, 300]
    # margin at 400 labels: 2 seeds (0.85, 0.90); random: 3
    m400 = next(b for b in a.budgets["margin"] if b.num_labeled == 400).values["test_acc"]
    assert m400.n == 2 and m400.mean == pytest.approx(0.875)
    # targets: random at 300 labels, 0.70, 0.72, 0.68 per seed; first crossings along margin's seed curves
    needed = [100 + 0.20 / 0.20 * 100, 100 + 0.20 / 0.23 * 100, 200 + (0.68 - 0.65) / 0.10 * 100]
    assert a.summaries["margin"].labels_needed.mean == pytest.approx(np.mean(needed))
    text = (rep.out_dir / "summary.md").read_text()
    assert "Status: PARTIAL, 23 rounds finished, 1 missing: margin seed 2: round 3." in text
    assert "| 87.50 ± " in text and "(n=2)" in text


def test_one_seed_has_no_interval(make_run, capsys):
    recs = records_for({0: RANDOM[0]}, "random") + records_for({0: MARGIN[0]}, "margin")
    rep = write_report([make_run("one", recs)])
    m = rep.analysis.summaries["margin"]
    assert m.verdict == "n/a" and not m.aubc.has_ci and not m.savings.has_ci
    assert m.savings.mean == pytest.approx(0.25)  # reaches 0.80 at 300 of 400 labels
    printed = capsys.readouterr().out
    assert "| margin | 1 | 85.00 |" in printed
    assert "n/a (1 seed) | 300 | 25.0 |" in printed


def test_no_random_arm_skips_savings_or_uses_another_baseline(make_run):
    run = make_run("run", records_for(MARGIN, "margin") + records_for(RANDOM, "uniform"))
    rep = write_report([run], echo=False)
    assert rep.analysis.baseline is None and rep.analysis.summaries["margin"].savings is None
    assert "No arm named 'random'" in (rep.out_dir / "summary.md").read_text()
    assert "vs_baseline.png" not in rep.files
    assert rep.analysis.summaries["margin"].aubc.mean == pytest.approx(0.725)
    rep = write_report([run], baseline="uniform", echo=False)
    assert rep.analysis.arms == ["uniform", "margin"]
    assert rep.analysis.summaries["margin"].savings.mean == pytest.approx(0.225)


def test_many_runs_merge_arms_and_seeds(make_run, report):
    a = make_run("a", records_for({s: RANDOM[s] for s in (0, 1)}, "random") + records_for(MARGIN, "margin"))
    b = make_run("b", records_for({2: RANDOM[2]}, "random"))
    rep = write_report([a, b], out=a.parent / "merged", echo=False)
    assert rep.out_dir == a.parent / "merged"
    assert rep.analysis.seeds("random") == [0, 1, 2]
    assert (rep.out_dir / "summary.csv").read_text() == (report.out_dir / "summary.csv").read_text()


def test_output_is_deterministic(make_run, full_records, tmp_path):
    run = make_run("run", full_records)
    write_report([run], out=tmp_path / "r1", echo=False, html=False)
    write_report([run], out=tmp_path / "r2", echo=False, html=False)
    for name in ("summary.csv", "summary.md", "curves.csv", "cost.csv"):
        assert (tmp_path / "r1" / name).read_text() == (tmp_path / "r2" / name).read_text()


def test_cost_ledger_and_coverage(report):
    totals = {t.arm: t for t in report.analysis.cost_totals}
    r = totals["random"]
    assert (r.n_seeds, r.n_rounds, r.final_labels) == (3, 12, 400)
    assert "embed_seconds" not in r.seconds and r.seconds["train_seconds"] == 12.0
    assert r.seconds["score_seconds"] == 0.25 * 9 and r.seconds["select_seconds"] == 0.125 * 9
    assert r.total == pytest.approx(12 + 6 + 2.25 + 1.125)  # the embedding is a shared line, not random's
    assert report.analysis.info.embed_seconds == 12.0
    cost = list(csv.DictReader(open(report.out_dir / "cost.csv")))
    assert len(cost) == 9 and cost[0]["arm"] == "(shared)" and float(cost[0]["embed_seconds"]) == 12.0
    first = next(c for c in cost if c["arm"] == "random" and c["round"] == "0")
    assert first["embed_seconds"] == "" and float(first["total_seconds"]) == pytest.approx(1.875)
    md = (report.out_dir / "cost.md").read_text()
    assert "| random | 3 | 12 | 400 | 12.00 | 6.00 | 2.25 | 1.12 | 21.38 |" in md
    cov = report.analysis.summaries["margin"].coverage
    assert cov.mean_counts == (394.0, 3.0, 3.0) and cov.min_covered == 3
    assert cov.imbalance == pytest.approx(394 / 3)
    assert report.analysis.summaries["random"].coverage.mean_counts == (200.0, 100.0, 100.0)
    assert "| margin | 3/3 | 3.0 | 394.0 | 131.33 | 394.0 | 3.0 | 3.0 |" in (report.out_dir / "summary.md").read_text()


def test_png_is_produced_and_not_blank(report):
    for name in ("curves.png", "vs_baseline.png"):
        img = imread(report.files[name])
        h, w = img.shape[:2]
        assert h >= 300 and w >= 500
        rgb = img[..., :3]
        assert (rgb < 0.9).any(axis=-1).mean() > 0.01  # drawn pixels, not a blank canvas
        packed = (rgb * 255).astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], dtype=np.uint32)
        assert len(np.unique(packed)) > 20  # lines, bands, antialiased text
    assert imread(report.files["curves.png"]).shape[1] > imread(report.files["vs_baseline.png"]).shape[1]  # 3 panels


def test_html_is_self_contained(report):
    page = (report.out_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2
    assert 'src="curves.png"' not in page and page.count("<table>") == 7


def test_cli_prints_summary_and_returns_0(make_run, full_records, tmp_path, capsys):
    run = make_run("run", full_records)
    assert main([str(run), "--out", str(tmp_path / "out"), "--bootstrap", "500", "--no-html"]) == 0
    out = capsys.readouterr().out
    assert "| margin | 3 | 85.00 ± 12.42 |" in out and str(tmp_path / "out") in out
    assert (tmp_path / "out" / "summary.md").exists() and not (tmp_path / "out" / "report.html").exists()


def test_cli_bad_input_is_one_error_line_and_writes_nothing(make_run, capsys):
    run = make_run("bad", [record("random", 0, 0, 0.5), '{"arm": "random", "seed": 0, "round": 1,'])
    assert main([str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lbench: error: ") and err.count("\n") == 1 and "rounds.jsonl:2: not valid JSON" in err
    assert not (run / "report").exists()
    assert main([str(run.parent / "missing")]) == 2
    assert main([]) == 2  # argparse: RUN_DIR is required
    assert main([str(run), "--bootstrap", "0"]) == 2
    with pytest.raises(ReportError, match="positive integer"):
        write_report([run], seeds_bootstrap=0)


def test_only_the_first_round_finished(make_run):
    recs = [record("random", 0, 0, 0.5), record("margin", 0, 0, 0.5)]
    rep = write_report([make_run("start", recs)], echo=False)
    assert rep.analysis.final_labels == 100 and rep.analysis.summaries["margin"].savings is None
    assert len(rep.missing) == 6
    assert "AUBC, savings and gains are not computed" in (rep.out_dir / "summary.md").read_text()
    assert imread(rep.files["curves.png"]).shape[0] >= 300
