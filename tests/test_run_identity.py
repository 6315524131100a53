"""A run's identity (run.json ``identity``, every ledger line's ``run_id``): stable, checked on resume."""

import json
import shutil

import pytest

from lbench.data.base import ArraySplit
from lbench.encoders.pixels import PixelEncoder
from tests.conftest import CONFIGS, run_cli


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _meta(run_dir):
    return json.loads((run_dir / "run.json").read_text())


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(run_dir, cache, capsys, *extra):
    return run_cli(["run", "-c", str(CONFIGS / "smoke.yaml"), "--out_dir", str(run_dir),
                    "--data.init_args.cache_dir", str(cache), "--report", "false", *extra], capsys)  # fmt: skip


def test_every_line_carries_the_identity_of_run_json(smoke_run):
    out, _ = smoke_run
    meta = _meta(out)
    assert len(meta["identity"]) == 16 and int(meta["identity"], 16) >= 0
    assert meta["identity_of"]["data"]["pool"] and meta["identity_of"]["data"]["test"]
    assert meta["identity_of"]["encoder"]["encoder"] == "pixels"
    lines = _lines(out / "rounds.jsonl")
    assert len(lines) == 2 * 2 * 4 and {r["run_id"] for r in lines} == {meta["identity"]}


def test_identity_is_stable_across_resume_and_extension(smoke_run, tmp_path, capsys):
    """Arms, seeds and rounds are not part of it: a small run extended, and resumed, keeps the full run's."""
    full, cache = smoke_run
    want = _meta(full)["identity"]
    run_dir = tmp_path / "run"
    rc, _, err = _run(run_dir, cache, capsys, "--arms", "[Random]", "--rounds", "0", "--seeds", "[0]")
    assert rc == 0, err
    assert _meta(run_dir)["identity"] == want
    rc, _, err = _run(run_dir, cache, capsys, "--arms", "[Random, Margin]", "--rounds", "1", "--seeds", "[0]")
    assert rc == 0, err
    rc, _, err = _run(run_dir, cache, capsys, "--arms", "[Random, Margin]", "--rounds", "1", "--seeds", "[0]")
    assert rc == 0, err  # a plain resume: nothing to do
    assert _meta(run_dir)["identity"] == want
    lines = _lines(run_dir / "rounds.jsonl")
    assert len(lines) == 4 and {r["run_id"] for r in lines} == {want}


def test_identity_covers_the_budget(smoke_run, tmp_path, capsys):
    _, cache = smoke_run
    a, b = tmp_path / "a", tmp_path / "b"
    for run_dir, budget in ((a, "20"), (b, "10")):
        rc, _, err = _run(run_dir, cache, capsys, "--arms", "[Random]", "--rounds", "0", "--seeds", "[0]",
                          "--budget", budget)  # fmt: skip
        assert rc == 0, err
    assert _meta(a)["identity"] != _meta(b)["identity"]


def test_old_run_without_identity_resumes_and_gets_it(smoke_run, tmp_path, capsys):
    full, cache = smoke_run
    run_dir = tmp_path / "run"
    shutil.copytree(full, run_dir)
    meta = _meta(run_dir)
    want = meta.pop("identity")
    del meta["identity_of"]
    (run_dir / "run.json").write_text(json.dumps(meta))
    old = [{k: v for k, v in r.items() if k != "run_id"} for r in _lines(run_dir / "rounds.jsonl")]
    (run_dir / "rounds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    rc, _, err = _run(run_dir, cache, capsys)
    assert rc == 0, err
    assert _meta(run_dir)["identity"] == want
    assert [r["run_id"] for r in _lines(run_dir / "rounds.jsonl")] == [want] * len(old)


@pytest.mark.parametrize("changed", ["data", "encoder"])
def test_same_config_on_other_data_or_encoder_is_refused(smoke_run, tmp_path, capsys, monkeypatch, changed):
    full, cache = smoke_run
    run_dir = tmp_path / "run"
    shutil.copytree(full, run_dir)
    before = _snapshot(run_dir)
    if changed == "data":  # the data files changed under the same config: another manifest
        manifest = ArraySplit.manifest
        monkeypatch.setattr(ArraySplit, "manifest", lambda self: {**manifest(self), "edited": True})
        named = ["data manifest of the pool split", "data manifest of the test split"]
    else:
        monkeypatch.setattr(PixelEncoder, "code_version", 99)
        named = ["encoder code_version"]
    rc, _, err = _run(run_dir, cache, capsys)
    assert rc == 2 and err.count("\n") == 1 and err.startswith("lbench: error:"), err
    assert "same config on other data or another encoder" in err
    for text in named:
        assert text in err
    assert _snapshot(run_dir) == before
