"""End-to-end: the real CLI on configs/smoke.yaml, the fit -> select path, and bad input."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from lbench.cli import main
from lbench.pool import LabelPool
from tests.conftest import CONFIGS, run_cli


def test_smoke_run_writes_ledger_and_pools(smoke_run):
    out, _ = smoke_run
    records = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert len(records) == 2 * 2 * 4  # arms x seeds x (rounds + 1)
    required = {"arm", "seed", "round", "num_labeled", "test_acc", "test_balanced_acc", "test_macro_f1",
                "select_seconds", "train_seconds", "selected"}  # fmt: skip
    for r in records:
        assert required <= r.keys()
        assert 0.0 <= r["test_acc"] <= 1.0
        assert r["num_labeled"] == 20 + 20 * r["round"]
        assert len(r["selected"]) == (20 if r["round"] < 3 else 0)
    for arm in ("random", "margin"):
        for seed in (0, 1):
            pool = LabelPool.load(out / arm / f"seed_{seed}" / "pool.json")
            assert pool.num_labeled == 80
            recs = sorted((r for r in records if r["arm"] == arm and r["seed"] == seed), key=lambda r: r["round"])
            for r in recs[:-1]:
                assert pool.selected_in_round(r["round"] + 1) == r["selected"]
            assert recs[-1]["label_counts"] == pool.label_counts()
    # every arm of a seed starts from the same initial set
    a = LabelPool.load(out / "random" / "seed_0" / "pool.json").selected_in_round(0)
    b = LabelPool.load(out / "margin" / "seed_0" / "pool.json").selected_in_round(0)
    assert a == b
    assert a != LabelPool.load(out / "random" / "seed_1" / "pool.json").selected_in_round(0)
    # learning happens: 80 labels beat 20 on digits
    final = [r["test_acc"] for r in records if r["round"] == 3]
    first = [r["test_acc"] for r in records if r["round"] == 0]
    assert min(final) > max(first)
    assert (out / "config.yaml").exists() and (out / "run.json").exists()


def test_rerun_resumes_and_matches(smoke_run, tmp_path, capsys):
    out, cache = smoke_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    lines = (copy / "rounds.jsonl").read_text().splitlines()
    # simulate a crash: the last 5 rounds never finished (pool.json may be ahead of the ledger)
    (copy / "rounds.jsonl").write_text("\n".join(lines[:-5]) + "\n")
    rc, stdout, _ = run_cli(["run", "-c", str(CONFIGS / "smoke.yaml"), "--out_dir", str(copy),
                             "--data.init_args.cache_dir", str(cache), "--report", "false"], capsys)  # fmt: skip
    assert rc == 0
    for arm in ("random", "margin"):
        for seed in (0, 1):
            p = f"{arm}/seed_{seed}/pool.json"
            assert LabelPool.load(copy / p).order == LabelPool.load(out / p).order
    new = [json.loads(line) for line in (copy / "rounds.jsonl").read_text().splitlines()]
    old = [json.loads(line) for line in lines]
    key = lambda r: (r["arm"], r["seed"], r["round"])  # noqa: E731
    assert sorted(map(key, new)) == sorted(map(key, old))
    for r_new in new:
        r_old = next(r for r in old if key(r) == key(r_new))
        assert r_new["selected"] == r_old["selected"]
        assert r_new["test_acc"] == pytest.approx(r_old["test_acc"], abs=1e-6)


def test_fit_then_select_writes_csv_and_pending(smoke_run, tmp_path, capsys):
    out, cache = smoke_run
    pool_file = tmp_path / "pool.json"
    shutil.copy(out / "margin" / "seed_0" / "pool.json", pool_file)
    common = ["--model", str(CONFIGS / "model" / "linear.yaml"), "--data", str(CONFIGS / "data" / "digits.yaml"),
              "--data.init_args.pool_file", str(pool_file), "--data.init_args.cache_dir", str(cache)]  # fmt: skip
    rc, _, _ = run_cli(["fit", "-c", str(CONFIGS / "trainer_fit.yaml"), *common,
                        "--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "2"], capsys)  # fmt: skip
    assert rc == 0
    ckpt = next(tmp_path.rglob("*.ckpt"))
    csv_path = tmp_path / "next.csv"
    rc, _, _ = run_cli(["select", *common, "--query", "Margin", "--budget", "7", "--output", str(csv_path),
                        "--ckpt_path", str(ckpt), "--trainer.default_root_dir", str(tmp_path)], capsys)  # fmt: skip
    assert rc == 0
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "rank,index,id,predicted,confidence,margin" and len(rows) == 8
    picked = [int(r.split(",")[1]) for r in rows[1:]]
    pool = LabelPool.load(pool_file)
    assert sorted(picked) == pool.pending
    assert not set(picked) & set(pool.labeled_index().tolist())
    margins = [float(r.split(",")[5]) for r in rows[1:]]
    assert margins == sorted(margins)  # smallest margins first
    # a second select skips the items already requested (pending)
    rc, _, _ = run_cli(["select", *common, "--query", "Margin", "--budget", "7", "--output", str(tmp_path / "b.csv"),
                        "--ckpt_path", str(ckpt), "--trainer.default_root_dir", str(tmp_path)], capsys)  # fmt: skip
    assert rc == 0
    second = [int(r.split(",")[1]) for r in (tmp_path / "b.csv").read_text().splitlines()[1:]]
    assert len(second) == 7 and not set(second) & set(picked)
    assert LabelPool.load(pool_file).pending == sorted(picked + second)
    before = pool_file.read_bytes()
    rc, _, err = run_cli(["select", *common, "--query", "Margin", "--budget", "5000", "--output",
                          str(tmp_path / "c.csv"), "--ckpt_path", str(ckpt)], capsys)  # fmt: skip
    assert rc == 2 and "pending" in err and len(err.strip().splitlines()) == 1
    assert pool_file.read_bytes() == before and not (tmp_path / "c.csv").exists()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--no_such_key", "1"], "unrecognized arguments"),
        (["--model.init_args.lrr", "0.1"], "'lrr' is not accepted"),
        (["--arms+=NoSuchStrategy"], "query strategies:"),
        (["--budget", "0"], "budget must be a positive integer"),
        (["--budget", "-5"], "budget must be a positive integer"),
        (["--budget", "600"], "pool has only"),
        (["--rounds", "-1"], "rounds must be"),
        (
            ["--data.init_args.dataset", "FashionMNIST", "--data.init_args.dataset.root", "/nonexistent"],
            "apt-get install dataset-fashion-mnist",
        ),
    ],
)
def test_bad_input_one_line_exit_2_nothing_changed(smoke_run, tmp_path, capsys, args, message):
    out, cache = smoke_run
    run_dir = tmp_path / "run"
    shutil.copytree(out, run_dir)
    before = snapshot(run_dir)
    rc, _, err = run_cli(["run", "-c", str(CONFIGS / "smoke.yaml"), "--out_dir", str(run_dir),
                          "--data.init_args.cache_dir", str(cache), *args], capsys)  # fmt: skip
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lbench: error:"), err
    assert message in lines[0]
    assert "Traceback" not in err
    assert snapshot(run_dir) == before


def test_unreadable_cache_is_one_line_error(smoke_run, tmp_path, capsys):
    _, cache = smoke_run
    bad_cache = tmp_path / "cache"
    shutil.copytree(cache, bad_cache)
    for meta in bad_cache.rglob("meta.json"):
        meta.write_text("{broken")
    run_dir = tmp_path / "run"
    rc, _, err = run_cli(["run", "-c", str(CONFIGS / "smoke.yaml"), "--out_dir", str(run_dir),
                          "--data.init_args.cache_dir", str(bad_cache)], capsys)  # fmt: skip
    assert rc == 2 and "cache file" in err and "delete" in err and len(err.strip().splitlines()) == 1
    assert not run_dir.exists()


def test_truncated_cache_file_is_one_line_error_before_anything_is_written(smoke_run, tmp_path, capsys):
    _, cache = smoke_run
    bad_cache = tmp_path / "cache"
    shutil.copytree(cache, bad_cache)
    store = next(bad_cache.glob("digits-train-*/plain.npy"))
    store.write_bytes(store.read_bytes()[:5000])
    run_dir = tmp_path / "run"
    rc, _, err = run_cli(["run", "-c", str(CONFIGS / "smoke.yaml"), "--out_dir", str(run_dir),
                          "--data.init_args.cache_dir", str(bad_cache)], capsys)  # fmt: skip
    assert rc == 2 and "truncated" in err and err.count("lbench: error:") == 1
    assert not run_dir.exists()


def test_changed_settings_in_existing_run_dir_is_refused(smoke_run, tmp_path, capsys):
    out, cache = smoke_run
    run_dir = tmp_path / "run"
    shutil.copytree(out, run_dir)
    before = snapshot(run_dir)
    rc, _, err = run_cli(["run", "-c", str(CONFIGS / "smoke.yaml"), "--out_dir", str(run_dir),
                          "--data.init_args.cache_dir", str(cache), "--budget", "10"], capsys)  # fmt: skip
    assert rc == 2 and "other settings" in err
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("config", sorted(p.relative_to(CONFIGS) for p in CONFIGS.rglob("*.yaml")), ids=str)
def test_every_config_parses(config, capsys):
    """Each YAML parses through the CLI parser of the subcommand it is for (--print_config)."""
    path = CONFIGS / config
    data = yaml.safe_load(path.read_text())
    model, digits = str(CONFIGS / "model" / "linear.yaml"), str(CONFIGS / "data" / "digits.yaml")
    if config.parts[0] == "data":
        args = ["fit", "--data", str(path), "--model", model]
    elif config.parts[0] == "model":
        args = ["fit", "--model", str(path), "--data", digits]
    elif config.parts[0] in ("query", "proxy", "encoder"):  # overlays composed after a paper run config
        base = CONFIGS / "paper" / "cifar10_proxy_shallow_b1000.yaml"
        args = ["run", "-c", str(base), "-c", str(path)]
        data = {**yaml.safe_load(base.read_text()), **data}
    elif "arms" not in data and (  # an overlay on a run config
        (isinstance(data.get("model"), dict) and "class_path" not in data["model"]) or "point_eval" in data
    ):
        args = ["run", "-c", str(CONFIGS / "smoke.yaml"), "-c", str(path)]
        data = {**yaml.safe_load((CONFIGS / "smoke.yaml").read_text()), **data}
    elif "arms" in data:
        args = ["run", "-c", str(path)]
    else:
        args = ["fit", "-c", str(path), "--model", model, "--data", digits]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    assert exit_info.value.code in (0, None)
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["model"]["class_path"].startswith("lbench.modules.")
    # the resolved class paths are part of a run's identity: they must not change between versions
    data_path = resolved["data"]["class_path"]
    if resolved["model"]["class_path"] == "lbench.modules.FineTuneClassifier" or "images" in str(config):
        assert data_path in ("lbench.data.images.ImageDataModule", "lbench.data.embeddings.EmbeddingDataModule")
    else:
        assert data_path == "lbench.data.embeddings.EmbeddingDataModule"
    if "arms" in data:
        assert [a["class_path"].split(".")[-1] for a in resolved["arms"]] == [a["class_path"] for a in data["arms"]]


def test_run_writes_report_and_report_subcommand_works(smoke_run, tmp_path, capsys):
    out, _ = smoke_run
    report = out / "report"
    for name in ("curves.png", "summary.md", "summary.csv", "cost.csv"):
        assert (report / name).stat().st_size > 0
    rc, stdout, _ = run_cli(["report", str(out), "--out", str(tmp_path / "rep")], capsys)
    assert rc == 0 and "margin" in stdout
    assert (tmp_path / "rep" / "summary.md").read_text() == (report / "summary.md").read_text()
    rc, _, err = run_cli(["report", str(tmp_path / "nope")], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1


def test_corrupt_ledger_on_resume_is_one_line_error(smoke_run, tmp_path, capsys):
    out, cache = smoke_run
    run_dir = tmp_path / "run"
    shutil.copytree(out, run_dir)
    with (run_dir / "rounds.jsonl").open("a") as f:
        f.write('{"arm": "margin", "seed": 0\n')
    before = snapshot(run_dir)
    rc, _, err = run_cli(["run", "-c", str(CONFIGS / "smoke.yaml"), "--out_dir", str(run_dir),
                          "--data.init_args.cache_dir", str(cache)], capsys)  # fmt: skip
    assert rc == 2 and "rounds.jsonl:17" in err and len(err.strip().splitlines()) == 1
    assert snapshot(run_dir) == before


def test_every_strategy_runs_as_an_arm(smoke_run, tmp_path, capsys):
    _, cache = smoke_run
    out = tmp_path / "all"
    rc, stdout, err = run_cli(["run", "-c", str(CONFIGS / "all_strategies.yaml"), "--out_dir", str(out),
                               "--data.init_args.cache_dir", str(cache), "--report", "false"], capsys)  # fmt: skip
    assert rc == 0, err
    records = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    arms = {"random", "confidence", "margin", "entropy", "badge", "coreset", "galaxy", "bait", "typiclust"}
    assert {r["arm"] for r in records} == arms
    for arm in arms:
        pool = LabelPool.load(out / arm / "seed_0" / "pool.json")
        assert pool.num_labeled == 80 and len(set(i for _, i in pool.order)) == 80
    picks = {r["arm"]: tuple(r["selected"]) for r in records if r["round"] == 0}
    assert len(set(picks.values())) >= 7  # the strategies really differ


def test_run_on_two_ddp_ranks(smoke_run, tmp_path):
    """The whole driver on 2 CPU ranks (gloo): one ledger, selections gathered and agreed across ranks."""
    import os
    import subprocess
    import sys

    _, cache = smoke_run
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "lbench", "run", "-c", str(CONFIGS / "smoke.yaml"), "--trainer.devices", "2",
           "--trainer.strategy", "ddp", "--seeds", "[0]", "--rounds", "2", "--out_dir", str(out),
           "--data.init_args.cache_dir", str(cache), "--report", "false"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(CONFIGS.parent)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert sorted((r["arm"], r["round"]) for r in records) == sorted(
        (a, r) for a in ("random", "margin") for r in range(3)
    )
    for arm in ("random", "margin"):
        pool = LabelPool.load(out / arm / "seed_0" / "pool.json")
        assert pool.num_labeled == 60
        recs = {r["round"]: r for r in records if r["arm"] == arm}
        assert pool.selected_in_round(1) == recs[0]["selected"] and pool.selected_in_round(2) == recs[1]["selected"]
        for r in recs.values():  # every one of the 539 test items counted exactly once (no sampler padding)
            assert abs(r["test_acc"] * 539 - round(r["test_acc"] * 539)) < 1e-3
