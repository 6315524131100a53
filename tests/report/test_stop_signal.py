"""The stop signal (stop_kappa of the round records) in the report: plot, table, CSV and console lines."""

import csv
import json

import pytest
from matplotlib.image import imread

from lbench.errors import ReportError
from lbench.report import write_report
from lbench.report.ledger import read_ledger_file
from tests.report.conftest import MARGIN, RANDOM, records_for, write_ledger

LABELS = [100, 200, 300, 400, 500, 600]  # rounds 0..5
# (test accuracy per round, κ per round) of each arm and seed
RUNS = {
    ("random", 0): ([0.50, 0.60, 0.70, 0.75, 0.78, 0.80], [None, 0.90, 0.995, 0.99, 0.999, 0.999]),  # fires at 4
    ("random", 1): ([0.52, 0.62, 0.72, 0.77, 0.80, 0.82], [None, 0.95, 0.98, 0.995, 0.995, 0.995]),  # fires at 5
    ("margin", 0): ([0.50, 0.70, 0.80, 0.85, 0.86, 0.87], [None, 0.80, 0.90, 0.95, 0.97, 0.98]),  # never
    ("margin", 1): ([0.52, 0.72, 0.82, 0.86, 0.88, 0.89], [None, 0.99, 0.99, 0.97, 0.999, 0.999]),  # best run 2
}


def stop_records(runs=RUNS, rounds_total=5):
    return [
        {
            "arm": arm,
            "seed": seed,
            "round": rnd,
            "num_labeled": LABELS[rnd],
            "test_acc": acc,
            "rounds_total": rounds_total,
            "selected": list(range(100)) if rnd < rounds_total else [],
            "stop_predictions": [0, 1, 2],
            "stop_kappa": kappa,
        }
        for (arm, seed), (accs, kappas) in runs.items()
        for rnd, (acc, kappa) in enumerate(zip(accs, kappas, strict=True))
    ]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return write_report([write_ledger(tmp_path_factory.mktemp("stop") / "run", stop_records())], echo=False)


def test_where_the_rule_fires(report):
    s = {(x.arm, x.seed): x for x in report.stops}
    assert list(s) == [("random", 0), ("random", 1), ("margin", 0), ("margin", 1)]
    assert s[("random", 0)].fired.round == 4 and s[("random", 0)].gap == pytest.approx(-0.02)
    assert s[("random", 1)].fired.round == 5 and s[("random", 1)].gap == pytest.approx(0.0)
    assert s[("margin", 0)].fired is None and s[("margin", 0)].longest_streak == 0
    assert s[("margin", 1)].fired is None and s[("margin", 1)].longest_streak == 2
    assert s[("margin", 1)].last_kappa == 0.999 and all(x.complete for x in s.values())


def test_table_in_markdown_and_html(report):
    md = (report.out_dir / "summary.md").read_text()
    assert "## Stop signal: where the rule κ ≥ 0.99 for 3 rounds in a row fires (a suggestion, not enforced)" in md
    assert "| random | 0 | 4 | 500 | 78.00 | 5 | 600 | 80.00 | -2.00 | 0.9990 |" in md
    assert "| random | 1 | 5 | 600 | 82.00 | 5 | 600 | 82.00 | +0.00 | 0.9950 |" in md
    assert "| margin | 0 | not fired (best run 0/3) | — | — | 5 | 600 | 87.00 | — | 0.9800 |" in md
    assert "| margin | 1 | not fired (best run 2/3) | — | — | 5 | 600 | 89.00 | — | 0.9990 |" in md
    assert "no run stops on it" in md and "Cohen's kappa" in md and "![stop_signal.png](stop_signal.png)" in md
    page = (report.out_dir / "report.html").read_text()
    assert "<h2>Stop signal" in page and 'alt="stop_signal.png"' in page


def test_plot_and_csv(report):
    img = imread(report.files["stop_signal.png"])
    assert img.shape[0] > 100 and img.shape[1] > 100
    with open(report.out_dir / "stop_signal.csv", newline="") as f:
        rows = {(r["arm"], r["seed"], r["round"]): r for r in csv.DictReader(f)}
    assert len(rows) == 24
    assert rows[("random", "0", "0")]["stop_kappa"] == "" and rows[("random", "0", "0")]["streak"] == "0"
    assert rows[("random", "0", "3")]["streak"] == "2" and rows[("random", "0", "3")]["rule_fired"] == "False"
    fired = rows[("random", "0", "4")]
    assert fired["rule_fired"] == "True" and float(fired["stop_kappa"]) == 0.999
    assert rows[("margin", "1", "5")]["num_labeled"] == "600" and rows[("margin", "1", "5")]["streak"] == "2"


def test_one_console_line_per_arm(report):
    lines = report.text.splitlines()
    i = lines.index("Stop signal (κ ≥ 0.99 for 3 rounds in a row; a suggestion, not enforced):")
    assert lines[i + 1] == (
        "- random: fires in 2/2 seeds, at rounds 4 (500 labels), 5 (600 labels); test accuracy then 80.00% vs final "
        "81.00% (-1.00 pp, mean over those seeds)"
    )
    assert lines[i + 2] == "- margin: does not fire in any of its 2 seeds; last κ 0.9895 (mean over seeds)"


def test_partial_run_is_marked(tmp_path):
    runs = {k: (accs[:4], kappas[:4]) for k, (accs, kappas) in RUNS.items() if k[0] == "random"}
    rep = write_report([write_ledger(tmp_path / "run", stop_records(runs))], echo=False, html=False)
    md = (rep.out_dir / "summary.md").read_text()
    assert "| random | 0 | not fired (best run 2/3) | — | — | 3 * | 400 | 75.00 | — | 0.9900 |" in md
    assert "* the run is not finished" in md
    assert "- random: does not fire in any of its 2 seeds" in rep.text


def test_old_ledger_has_no_stop_section(make_run, capsys):
    recs = records_for(RANDOM, "random") + records_for(MARGIN, "margin")
    rep = write_report([make_run("old", recs)])
    assert rep.stops == [] and "stop_signal.png" not in rep.files and "stop_signal.csv" not in rep.files
    assert not (rep.out_dir / "stop_signal.png").exists()
    for name in ("summary.md", "report.html"):
        assert "stop signal" not in (rep.out_dir / name).read_text().lower()
    assert "Stop signal" not in capsys.readouterr().out
    only_round0 = [{**r, "stop_kappa": None} for r in recs]  # a run whose κ are all null has nothing to show
    assert write_report([make_run("null", only_round0)], echo=False, html=False).stops == []


@pytest.mark.parametrize("bad", [1.5, -1.01, "0.9", True, float("nan")])
def test_malformed_kappa_names_file_and_line(tmp_path, bad):
    recs = stop_records()
    recs[1]["stop_kappa"] = bad
    run = write_ledger(tmp_path / "run", [json.dumps(r) for r in recs])
    with pytest.raises(ReportError, match=r"rounds.jsonl:2: 'stop_kappa' must be a number in \[-1, 1\] or null"):
        read_ledger_file(run / "rounds.jsonl")


def test_kappa_is_read_from_the_ledger(tmp_path):
    run = write_ledger(tmp_path / "run", stop_records())
    recs = read_ledger_file(run / "rounds.jsonl")
    assert [r.stop_kappa for r in recs[:3]] == [None, 0.90, 0.995] and recs[0].stop_kappa is None
    old = read_ledger_file(write_ledger(tmp_path / "old", records_for(RANDOM, "random")) / "rounds.jsonl")
    assert all(r.stop_kappa is None for r in old)
