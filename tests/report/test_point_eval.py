"""Pool accuracy per round and the point evaluation (point_eval.jsonl) in the report, with hand-computed numbers."""

import csv
import json
import math

import pytest

from lbench.errors import ReportError
from lbench.report import write_report
from lbench.report.ledger import load_ledger, read_point_eval_file
from tests.report.conftest import MARGIN, RANDOM, record, records_for, write_ledger

T2 = 4.302652729749462  # scipy.stats.t.ppf(0.975, 2): 3 seeds
T1 = 12.706204736174707  # scipy.stats.t.ppf(0.975, 1): 2 seeds
MODEL = "PointEvaluation(FineTuneClassifier, max_epochs=5)"

# Fine-tuned test accuracy per seed; the proxy's is the arm's final round (RANDOM/MARGIN at 400 labels).
FINE = {"random": [0.90, 0.93, 0.87], "margin": [0.92, 0.96, 0.88]}
FINE_POOL = {"random": [0.95, 0.95, 0.95], "margin": [0.97, None, 0.95]}  # seed 1: a person's oracle


def half(sd, n):
    """95% t half-width in percent."""
    return 100 * {3: T2, 2: T1}[n] * sd / math.sqrt(n)


def pool_records():
    """Rounds whose pool accuracy is the test accuracy + 0.05."""
    return [
        record(arm, seed, rnd, acc, {"pool_acc": round(acc + 0.05, 6)})
        for arm, curves in (("random", RANDOM), ("margin", MARGIN))
        for seed, ys in curves.items()
        for rnd, acc in enumerate(ys)
    ]


def point(arm, seed, test_acc, pool_acc, extra=None):
    proxy = {"random": RANDOM, "margin": MARGIN}[arm][seed][-1]
    rec = {
        "arm": arm,
        "seed": seed,
        "num_labeled": 400,
        "model": MODEL,
        "ssl": "FlexMatch",
        "test_acc": test_acc,
        "test_balanced_acc": round(test_acc - 0.05, 6),
        "test_macro_f1": round(test_acc - 0.06, 6),
        "test_min_class_acc": round(test_acc - 0.2, 6),
        "pool_acc": pool_acc,
        "proxy_test_acc": proxy,
        "proxy_pool_acc": round(proxy + 0.05, 6),
        "train_seconds": 30.0,
        "test_seconds": 2.0,
    }
    return {**rec, **(extra or {})}


def point_records():
    return [point(arm, s, FINE[arm][s], FINE_POOL[arm][s]) for arm in ("random", "margin") for s in range(3)]


NO_PROXY = {k: v for k, v in point("margin", 1, 0.96, 0.9).items() if k != "proxy_test_acc"}


def write_points(run_dir, lines):
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    (run_dir / "point_eval.jsonl").write_text(text)
    return run_dir


def csv_rows(path, key=("arm",)):
    with open(path, newline="") as f:
        return {tuple(r[k] for k in key): r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = write_points(write_ledger(tmp_path_factory.mktemp("pe") / "run", pool_records()), point_records())
    return write_report([run], echo=False)


def test_pool_accuracy_per_round_table_and_csv(report):
    md = (report.out_dir / "summary.md").read_text()
    assert "## Pool accuracy per number of labels (%)" in md
    # at 400 labels: random pool acc 0.85, 0.87, 0.83 (sd 0.02); margin 0.90, 0.95, 0.85 (sd 0.05)
    assert f"| 400 | 85.00 ± {half(0.02, 3):.2f} | 90.00 ± {half(0.05, 3):.2f} |" in md
    assert f"| 100 | 55.00 ± {half(0.02, 3):.2f} | 55.00 ± {half(0.02, 3):.2f} |" in md
    assert "pool accuracy @ 400 (%) |" in md and "the labels given plus the model's predictions" in md
    curves = csv_rows(report.out_dir / "curves.csv", ("arm", "num_labeled"))
    assert float(curves[("margin", "400")]["pool_acc_mean"]) == pytest.approx(0.90)
    assert float(curves[("random", "200")]["pool_acc_mean"]) == pytest.approx(0.65)
    assert float(curves[("random", "400")]["pool_acc_ci_high"]) == pytest.approx(0.85 + half(0.02, 3) / 100)
    summary = csv_rows(report.out_dir / "summary.csv")
    assert float(summary[("margin",)]["pool_acc_mean"]) == pytest.approx(0.90)
    assert "Pool accuracy per number of labels (%)" in (report.out_dir / "report.html").read_text()


def test_point_evaluation_numbers(report):
    p = {s.arm: s for s in report.points}
    assert list(p) == ["random", "margin"] and p["margin"].num_labeled == 400
    m = p["margin"].values
    assert m["test_acc"].mean == pytest.approx((0.92 + 0.96 + 0.88) / 3)
    assert m["proxy_test_acc"].mean == pytest.approx((0.85 + 0.90 + 0.80) / 3)
    assert m["gain_test_acc"].mean == pytest.approx(((0.92 - 0.85) + (0.96 - 0.90) + (0.88 - 0.80)) / 3)
    assert m["pool_acc"].mean == pytest.approx((0.97 + 0.95) / 2) and m["pool_acc"].n == 2  # null seed left out
    assert p["margin"].std["test_acc"] == pytest.approx(0.04)
    assert p["random"].values["gain_test_acc"].mean == pytest.approx(0.10)


def test_point_evaluation_in_markdown_csv_html_and_console(report):
    md = (report.out_dir / "summary.md").read_text()
    assert "## Point evaluation" in md and f"Fine-tuned model: {MODEL}." in md
    # margin: proxy 85 (sd 5), fine-tuned 92 (sd 4), gain 7 (sd 1), pool 96 over 2 seeds (sd 1.414), balanced 87
    margin = (
        f"| margin | 3 | 400 | FlexMatch | 85.00 ± {half(0.05, 3):.2f} | 92.00 ± {half(0.04, 3):.2f} | "
        f"7.00 ± {half(0.01, 3):.2f} | 96.00 ± {half(math.sqrt(2) / 100, 2):.2f} (n=2) | "
        f"87.00 ± {half(0.04, 3):.2f} | 30.0 |"
    )
    assert margin in md
    random = f"| random | 3 | 400 | FlexMatch | 80.00 ± {half(0.02, 3):.2f} | 90.00 ± {half(0.03, 3):.2f} | 10.00 ± "
    assert random in md and "| 95.00 ± 0.00 |" in md
    rows = csv_rows(report.out_dir / "point_eval.csv")
    r = rows[("margin",)]
    assert (r["num_labeled"], r["n_seeds"], r["seeds"], r["ssl"], r["model"]) == (
        "400",
        "3",
        "0 1 2",
        "FlexMatch",
        MODEL,
    )
    assert float(r["test_acc_mean"]) == pytest.approx(0.92) and float(r["test_acc_std"]) == pytest.approx(0.04)
    assert float(r["proxy_test_acc_mean"]) == pytest.approx(0.85)
    assert float(r["gain_test_acc_mean"]) == pytest.approx(0.07)
    assert float(r["pool_acc_mean"]) == pytest.approx(0.96) and float(r["proxy_pool_acc_mean"]) == pytest.approx(0.90)
    assert float(r["test_min_class_acc_mean"]) == pytest.approx(0.72)
    assert float(rows[("random",)]["test_acc_ci_high"]) == pytest.approx(0.90 + half(0.03, 3) / 100)
    page = (report.out_dir / "report.html").read_text()
    assert "<h2>Point evaluation" in page and f"<td>92.00 ± {half(0.04, 3):.2f}</td>" in page
    assert report.files["point_eval.csv"] == report.out_dir / "point_eval.csv"
    lines = report.text.splitlines()
    assert f"- margin @ 400 (FlexMatch): 85.00 ± {half(0.05, 3):.2f} -> 92.00 ± {half(0.04, 3):.2f} " in report.text
    assert sum(line.startswith(("- random @ 400", "- margin @ 400")) for line in lines) == 2
    assert (
        f"(gain 7.00 ± {half(0.01, 3):.2f} pp); pool acc 96.00 ± {half(math.sqrt(2) / 100, 2):.2f} (n=2)" in report.text
    )


def test_fine_tuned_points_are_drawn_on_the_curves(report, tmp_path):
    run = write_ledger(tmp_path / "run", pool_records())
    without = write_report([run], echo=False, html=False)
    assert without.files["curves.png"].read_bytes() != report.files["curves.png"].read_bytes()


@pytest.mark.parametrize("pool", ["absent", "null"])
def test_old_ledger_has_no_pool_or_point_sections(make_run, full_records, pool, capsys):
    if pool == "null":  # a person's oracle: pool accuracy not measured
        full_records = [{**r, "pool_acc": None} for r in full_records]
    rep = write_report([make_run("old", full_records)])
    assert load_ledger([rep.out_dir.parent]).metrics == ("test_acc", "test_balanced_acc", "test_macro_f1")
    assert rep.points == [] and "point_eval.csv" not in rep.files
    assert not (rep.out_dir / "point_eval.csv").exists()
    for name in ("summary.md", "report.html", "curves.csv", "summary.csv"):
        text = (rep.out_dir / name).read_text().lower()
        for word in ("pool acc", "pool_acc", "point evaluation", "fine-tuned"):
            assert word not in text, (name, word)
    assert "Point evaluation" not in capsys.readouterr().out


def test_pool_accuracy_in_some_records_only_is_noted(make_run):
    recs = pool_records()
    del recs[5]["pool_acc"]
    rep = write_report([make_run("mixed", recs)], echo=False)
    assert "pool_acc" not in rep.analysis.metrics
    assert "pool_acc is missing in some records: it is not reported." in (rep.out_dir / "summary.md").read_text()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"arm": "margin", "seed": 1,', "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (
            json.dumps(point("margin", 1, 0.96, 0.9, {"test_acc": 96.0})),
            "'test_acc' must be a fraction in [0, 1], got 96.0",
        ),
        (json.dumps(NO_PROXY), "missing required key(s) proxy_test_acc"),
        (json.dumps(point("margin", 1, 0.96, "high")), "'pool_acc' must be a fraction"),
        (json.dumps(point("margin", 1, 0.96, 0.9, {"seed": "1"})), "'seed' must be an integer"),
        (json.dumps(point("margin", 1, 0.96, 0.9, {"num_labeled": 0})), "'num_labeled' must be an integer >= 1"),
        (json.dumps(point("margin", 1, 0.96, 0.9, {"ssl": 3})), "'ssl' must be a string or null"),
        (json.dumps(point("margin", 1, 0.96, 0.9, {"train_seconds": -1})), "'train_seconds'"),
    ],
)
def test_malformed_point_line_names_file_and_line(make_run, line, message):
    run = write_points(make_run("bad", pool_records()), [point("margin", 0, 0.92, 0.97), "", line])
    with pytest.raises(ReportError) as e:
        write_report([run], echo=False)
    assert f"{run / 'point_eval.jsonl'}:3:" in str(e.value) and message in str(e.value)
    assert not (run / "report").exists()


def test_duplicate_arm_and_seed_is_an_error(make_run, tmp_path):
    run = write_points(make_run("dup", pool_records()), [point("margin", 0, 0.92, 0.97), point("margin", 0, 0.9, 0.9)])
    pattern = r"point_eval.jsonl:2: point evaluation of arm 'margin' seed 0 already recorded at .*point_eval.jsonl:1"
    with pytest.raises(ReportError, match=pattern):
        load_ledger([run])
    # merged runs must not both point-evaluate the same (arm, seed)
    a = write_points(
        write_ledger(tmp_path / "a", records_for({0: RANDOM[0]}, "random")), [point("random", 0, 0.9, 0.9)]
    )
    b = write_points(
        write_ledger(tmp_path / "b", records_for({1: RANDOM[1]}, "random")), [point("random", 0, 0.9, 0.9)]
    )
    with pytest.raises(ReportError, match="seed 0 already recorded at"):
        load_ledger([a, b])


def test_read_point_eval_file(tmp_path):
    assert read_point_eval_file(tmp_path / "point_eval.jsonl") == []  # no file: no point evaluation
    write_points(tmp_path, [point("margin", 1, 0.96, None, {"ssl": None}), point("margin", 1, 0.9, 0.9)])
    with pytest.raises(ReportError, match=r"point_eval.jsonl:2: .* seed 1 already recorded at .*point_eval.jsonl:1"):
        read_point_eval_file(tmp_path / "point_eval.jsonl")
    write_points(tmp_path, [point("margin", 1, 0.96, None, {"ssl": None})])
    (r,) = read_point_eval_file(tmp_path / "point_eval.jsonl")
    assert (r.arm, r.seed, r.num_labeled, r.ssl, r.model) == ("margin", 1, 400, None, MODEL)
    assert "pool_acc" not in r.metrics and r.metrics["proxy_test_acc"] == 0.90 and r.seconds["train_seconds"] == 30.0
