"""Point evaluation in ``lbench run``: fine-tune end to end after the last round, record, resume."""

import json

import pytest
import yaml

from tests.conftest import CONFIGS, run_cli

#: A tiny timm model fine-tuned on 8x8 digits at 32 px: seconds per arm on 2 CPU cores.
POINT_EVAL = {
    "point_eval": {
        "model": {
            "class_path": "FineTuneClassifier",
            "init_args": {
                "encoder": {
                    "class_path": "TimmEncoder",
                    "init_args": {"model_name": "test_convnext", "image_size": 32, "trainable": True},
                },
                "backbone_lr": 0.001,
                "head_lr": 0.01,
            },
        },
        "max_epochs": 2,
        "batch_size": 16,
        "samples_per_epoch": 64,
    }
}


def _run(tmp_path, capsys, out, *extra, point_eval=POINT_EVAL, cache=None):
    cfg = tmp_path / "point_eval.yaml"
    cfg.write_text(yaml.safe_dump(point_eval))
    args = ["run", "-c", str(CONFIGS / "smoke.yaml"), "--seeds", "[0]", "--rounds", "1", "--out_dir", str(out),
            "--data.init_args.cache_dir", str(cache or tmp_path / "cache"), "--report", "false"]  # fmt: skip
    if point_eval is not None:
        args += ["-c", str(cfg)]
    return run_cli([*args, *extra], capsys)


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A 2-arm, 1-seed, 1-round smoke run with point evaluation: (tmp dir, run dir)."""
    from lbench.cli import main

    tmp = tmp_path_factory.mktemp("pe")
    cfg = tmp / "point_eval.yaml"
    cfg.write_text(yaml.safe_dump(POINT_EVAL))
    out = tmp / "run"
    rc = main(["run", "-c", str(CONFIGS / "smoke.yaml"), "-c", str(cfg), "--seeds", "[0]", "--rounds", "1",
               "--out_dir", str(out), "--data.init_args.cache_dir", str(tmp / "cache"),
               "--report", "false"])  # fmt: skip
    assert rc == 0
    return tmp, out


def test_point_eval_records_each_arm_beside_the_proxy(evaluated):
    _, out = evaluated
    rounds = _lines(out / "rounds.jsonl")
    records = _lines(out / "point_eval.jsonl")
    assert sorted((r["arm"], r["seed"]) for r in records) == [("margin", 0), ("random", 0)]
    for rec in records:
        last = next(r for r in rounds if r["arm"] == rec["arm"] and r["round"] == 1)
        assert rec["num_labeled"] == last["num_labeled"] == 40
        assert rec["proxy_test_acc"] == last["test_acc"] and rec["proxy_pool_acc"] == last["pool_acc"]
        assert rec["ssl"] is None and rec["model"].startswith("PointEvaluation(FineTuneClassifier")
        # the 40 given labels are right, so the pool accuracy is at least their share of the pool
        pool_size = json.loads((out / "run.json").read_text())["pool_size"]
        assert 40 / pool_size <= rec["pool_acc"] <= 1.0
        assert 0.0 <= rec["test_acc"] <= 1.0 and rec["train_seconds"] > 0
        assert (out / rec["arm"] / "seed_0" / "point_eval" / "metrics.csv").exists()  # its own logs
        assert not (out / rec["arm"] / "seed_0" / "work").exists()  # its phase outputs are removed when recorded
    assert json.loads((out / "run.json").read_text())["point_eval"]["point_eval.init_args.max_epochs"] == 2


def test_point_eval_resumes_and_redoes_the_same_result(evaluated, tmp_path, capsys):
    """An evaluation lost in a crash is redone on resume, to the same numbers; finished ones are kept."""
    src_tmp, src = evaluated
    out = tmp_path / "run"
    import shutil

    shutil.copytree(src, out)
    full = (src / "point_eval.jsonl").read_text()
    first, _ = full.splitlines(keepends=True)
    (out / "point_eval.jsonl").write_text(first)  # as if killed during the second evaluation
    rounds_before = (out / "rounds.jsonl").read_text()
    rc, _, err = _run(tmp_path, capsys, out, cache=src_tmp / "cache")
    assert rc == 0, err
    assert (out / "rounds.jsonl").read_text() == rounds_before  # no round redone
    redone, original = _lines(out / "point_eval.jsonl"), _lines(src / "point_eval.jsonl")
    drop = ("train_seconds", "test_seconds")
    assert [{k: v for k, v in r.items() if k not in drop} for r in redone] == [
        {k: v for k, v in r.items() if k not in drop} for r in original
    ]


def test_point_eval_added_to_a_finished_run(tmp_path, capsys):
    out = tmp_path / "run"
    rc, _, err = _run(tmp_path, capsys, out, point_eval=None)
    assert rc == 0, err
    assert not (out / "point_eval.jsonl").exists()
    rounds_before = (out / "rounds.jsonl").read_text()
    rc, _, err = _run(tmp_path, capsys, out)
    assert rc == 0, err
    assert (out / "rounds.jsonl").read_text() == rounds_before
    assert len(_lines(out / "point_eval.jsonl")) == 2


def test_changed_point_eval_settings_are_refused_and_nothing_is_written(evaluated, tmp_path, capsys):
    src_tmp, src = evaluated
    out = tmp_path / "run"
    import shutil

    shutil.copytree(src, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    rc, _, err = _run(tmp_path, capsys, out, "--point_eval.max_epochs", "3", cache=src_tmp / "cache")
    assert rc == 2
    assert err.startswith("lbench: error: ") and err.count("\n") == 1
    assert "point_eval.init_args.max_epochs 2 -> 3" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_more_rounds_redo_the_point_evaluation_on_the_larger_set(evaluated, tmp_path, capsys):
    src_tmp, src = evaluated
    out = tmp_path / "run"
    import shutil

    shutil.copytree(src, out)
    rc, _, err = _run(tmp_path, capsys, out, "--rounds", "2", cache=src_tmp / "cache")
    assert rc == 0, err
    records = _lines(out / "point_eval.jsonl")
    assert len(records) == 2 and {r["num_labeled"] for r in records} == {60}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("--point_eval.max_epochs", "0", "point_eval.max_epochs must be a positive integer"),
        ("--point_eval.precision", "fp8", "point_eval.precision must be one of"),
    ],
)
def test_bad_point_eval_values_are_one_line_errors(tmp_path, capsys, key, value, message):
    out = tmp_path / "run"
    rc, _, err = _run(tmp_path, capsys, out, key, value)
    assert rc == 2 and message in err and err.count("\n") == 1
    assert not out.exists()
