"""The command line as a newcomer meets it: help, packaged configs, quiet output."""

import subprocess
import sys

import pytest

from lbench.cli import SUBCOMMANDS, main, packaged_configs, resolve_config
from lbench.errors import ConfigError
from tests.conftest import CONFIGS, run_cli

ALL = ["run", "fit", "validate", "test", "predict", "select", "embed", "init", "label", "annotate", "report"]


def test_top_level_help_lists_every_subcommand_once(capsys):
    rc, out, _ = run_cli(["--help"], capsys)
    assert rc == 0
    assert out.startswith("usage: lbench ")
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert listed == ALL == list(SUBCOMMANDS)
    assert "Lightning Trainer command line tool" not in out and "__main__" not in out


def test_no_subcommand_prints_the_list_and_exits_2(capsys):
    rc, out, err = run_cli([], capsys)
    assert rc == 2 and out == ""
    assert all(f"  {name}" in err for name in ALL)


def test_unknown_subcommand_is_one_line(capsys):
    rc, _, err = run_cli(["fitt"], capsys)
    assert rc == 2 and err.strip().splitlines() == [err.strip()] and "fitt" in err and "report" in err


def test_run_help_shows_lbench_arguments_first(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: lbench run")
    lines = out.splitlines()
    first = lambda text: next(i for i, line in enumerate(lines) if text in line)  # noqa: E731
    assert first("--arms") < first("--trainer.max_epochs") and first("--out_dir") < first("--model")
    assert first("--arms") < 40


def test_console_script_and_module_name_the_program_lbench():
    proc = subprocess.run([sys.executable, "-m", "lbench", "select", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: lbench select")


def test_packaged_configs_resolve_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here: a pip-installed user
    names = packaged_configs()
    assert {"default", "smoke", "all_strategies", "trainer_fit", "model/linear", "data/digits"} <= set(names)
    for name, file in [("default", "default.yaml"), ("default.yaml", "default.yaml"),
                       ("configs/default.yaml", "default.yaml"), ("model/mlp", "model/mlp.yaml")]:  # fmt: skip
        path = resolve_config(name)
        assert open(path).read() == (CONFIGS / file).read_text()
    (tmp_path / "mine.yaml").write_text("rounds: 1\n")
    assert resolve_config("mine.yaml") == "mine.yaml"  # a real file wins
    with pytest.raises(ConfigError, match="packaged configs: all_strategies"):
        resolve_config("defualt")


def test_run_with_a_packaged_config_name(smoke_run, tmp_path, capsys, monkeypatch):
    _, cache = smoke_run
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["run", "-c", "smoke", "--data.init_args.cache_dir", str(cache), "--print_config"])
    assert e.value.code in (0, None)
    assert "class_path: lbench.strategies.Margin" in capsys.readouterr().out


def test_packaged_configs_are_package_data():
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(CONFIGS.parent / "setup.cfg")
    globs = cfg["options.package_data"]["lbench"]
    assert "configs/*.yaml" in globs and "configs/*/*.yaml" in globs
    assert CONFIGS.resolve() == (CONFIGS.parent / "lbench" / "configs").resolve()


def test_run_console_is_quiet(smoke_run, tmp_path):
    """A run prints its table, not Lightning's device lines, tips or seed warnings (a subprocess, as a user)."""
    _, cache = smoke_run
    cmd = [sys.executable, "-m", "lbench", "run", "-c", str(CONFIGS / "smoke.yaml"), "--seeds", "[0]",
           "--rounds", "1", "--out_dir", str(tmp_path / "r"), "--data.init_args.cache_dir", str(cache)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout + proc.stderr
    for noise in ("GPU available", "TPU available", "Tip:", "No seed found", "LOCAL_RANK", "WARNING clustering",
                  "will be deleted", "Traceback"):  # fmt: skip
        assert noise not in text, noise
    assert "\r" not in proc.stderr  # not a terminal: plain lines, no carriage-return bars
    assert "| round | labels | random | margin |" in proc.stdout
    assert len(text.splitlines()) < 60


def test_embed_builds_then_reports_complete(tmp_path, capsys):
    args = ["embed", "--data", str(CONFIGS / "data" / "digits.yaml"), "--data.init_args.cache_dir", str(tmp_path)]
    rc, out, err = run_cli(args, capsys)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("digits-train: 1258 items") and lines[1].startswith("digits-test: 539 items")
    assert lines[2].startswith("built in ")
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert len(folders) == 2 and all(str(tmp_path) in line for line in lines[:2])
    rc, out, _ = run_cli(args, capsys)
    assert rc == 0 and out.splitlines()[2] == "the cache was complete already"
    rc, out, _ = run_cli([*args, "--data.init_args.weak_views", "1", "--data.init_args.strong_views", "1"], capsys)
    assert rc == 0 and out.splitlines()[2].startswith("built in ")  # the plain view was there, the new views were not


def test_embed_takes_a_run_config_and_builds_that_runs_cache(tmp_path, capsys):
    """The README says `lbench embed -c default`: a run config's own settings are accepted and unused."""
    cache = tmp_path / "cache"
    rc, out, err = run_cli(["embed", "-c", "smoke", "--data.init_args.cache_dir", str(cache)], capsys)
    assert rc == 0, err
    assert out.splitlines()[0].startswith("digits-train: 1258 items") and not (tmp_path / "checkpoints").exists()
    run = tmp_path / "run"
    built = sorted(p.name for p in cache.iterdir())
    rc, _, err = run_cli(["run", "-c", "smoke", "--data.init_args.cache_dir", str(cache), "--out_dir", str(run),
                          "--rounds", "0", "--seeds", "[0]", "--report", "false"], capsys)  # fmt: skip
    assert rc == 0, err
    assert sorted(p.name for p in cache.iterdir()) == built  # run found the cache embed built: nothing new
    rc, _, err = run_cli(["embed", "-c", "smoke", "--data.init_args.cache_dir", str(cache), "--bogus", "1"], capsys)
    assert rc == 2 and "bogus" in err
