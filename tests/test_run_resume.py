"""A run directory is one experiment: resume, extend (rounds, arms, seeds), refuse anything else by name."""

import json
import shutil

import pytest

from lbench.pool import LabelPool
from tests.conftest import CONFIGS, run_cli


def _records(run_dir):
    rows = [json.loads(line) for line in (run_dir / "rounds.jsonl").read_text().splitlines()]
    return {(r["arm"], r["seed"], r["round"]): r for r in rows}


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(run_dir, cache, capsys, *extra):
    return run_cli(["run", "-c", str(CONFIGS / "smoke.yaml"), "--out_dir", str(run_dir),
                    "--data.init_args.cache_dir", str(cache), "--report", "false", *extra], capsys)  # fmt: skip


def test_extending_rounds_and_arms_equals_a_run_started_with_them(smoke_run, tmp_path, capsys):
    full, cache = smoke_run  # random + margin, seeds 0 and 1, 3 rounds
    run_dir = tmp_path / "run"
    rc, _, err = _run(run_dir, cache, capsys, "--arms", "[Random]", "--rounds", "1", "--seeds", "[0]")
    assert rc == 0, err
    rc, _, err = _run(run_dir, cache, capsys, "--arms", "[Random, Margin]", "--rounds", "2", "--seeds", "[0]")
    assert rc == 0, err
    rc, _, err = _run(run_dir, cache, capsys)  # the config's own: 3 rounds, seeds 0 and 1
    assert rc == 0, err
    got, want = _records(run_dir), _records(full)
    assert sorted(got) == sorted(want)
    for key, rec in want.items():
        assert got[key]["selected"] == rec["selected"], key
        assert got[key]["test_acc"] == pytest.approx(rec["test_acc"], abs=1e-6), key
        assert got[key]["rounds_total"] == 3
    for arm in ("random", "margin"):
        for seed in (0, 1):
            p = f"{arm}/seed_{seed}/pool.json"
            assert LabelPool.load(run_dir / p).order == LabelPool.load(full / p).order
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["settings"]["rounds"] == 3 and list(meta["settings"]["arms"]) == ["random", "margin"]
    rc, out, err = run_cli(["report", str(run_dir)], capsys)  # the extended ledger is consistent
    assert rc == 0, err


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--budget", "10"], ["budget 20 -> 10"]),
        (["--rounds", "2"], ["rounds 3 -> 2", "not shortened"]),
        (["--arms", "[Random]"], ["arm margin is missing"]),
        (["--arms", "[Random, {class_path: Badge, init_args: {chunk_size: 7}}]"], ["arm margin is missing"]),
        (["--data.init_args.dataset.init_args.seed", "1"], ["data.init_args.dataset.init_args.seed 0 -> 1"]),
        (["--model", str(CONFIGS / "model" / "mlp.yaml")], ["model.init_args.hidden_dim null -> 256"]),
        (["--trainer.max_epochs", "7", "--budget", "30"], ["trainer.max_epochs 5 -> 7", "budget 20 -> 30"]),
    ],
)
def test_other_settings_are_refused_by_name_and_nothing_changes(smoke_run, tmp_path, capsys, args, named):
    out, cache = smoke_run
    run_dir = tmp_path / "run"
    shutil.copytree(out, run_dir)
    before = _snapshot(run_dir)
    rc, _, err = _run(run_dir, cache, capsys, *args)
    assert rc == 2 and err.count("\n") == 1 and "other settings" in err
    for text in named:
        assert text in err
    assert _snapshot(run_dir) == before


def test_settings_that_do_not_change_results_may_differ(smoke_run, tmp_path, capsys):
    out, cache = smoke_run
    run_dir = tmp_path / "run"
    shutil.copytree(out, run_dir)
    moved = tmp_path / "cache2"
    shutil.copytree(cache, moved)
    rc, _, err = run_cli(["run", "-c", str(CONFIGS / "smoke.yaml"), "--out_dir", str(run_dir), "--report", "false",
                          "--data.init_args.cache_dir", str(moved), "--trainer.enable_progress_bar", "true"],
                         capsys)  # fmt: skip
    assert rc == 0, err
    assert _records(run_dir).keys() == _records(out).keys()


def test_user_logger_is_kept_one_per_round(smoke_run, tmp_path, capsys):
    _, cache = smoke_run
    run_dir, logs = tmp_path / "run", tmp_path / "mylogs"
    rc, _, err = _run(run_dir, cache, capsys, "--seeds", "[0]", "--rounds", "1", "--trainer.logger", "CSVLogger",
                      "--trainer.logger.save_dir", str(logs), "--trainer.logger.name", "exp")  # fmt: skip
    assert rc == 0, err
    versions = sorted(p.name for p in (logs / "exp").iterdir())
    assert versions == [f"{arm}-seed_0-round_{r:02d}" for arm in ("margin", "random") for r in (0, 1)]
    for v in versions:
        assert "train/loss" in (logs / "exp" / v / "metrics.csv").read_text()
    assert not list(run_dir.glob("*/seed_0/round_*"))  # no default CSV logger beside the user's


def test_default_logger_is_csv_per_round(smoke_run):
    out, _ = smoke_run
    assert (out / "margin" / "seed_0" / "round_02" / "metrics.csv").exists()
