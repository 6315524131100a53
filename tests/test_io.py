"""Atomic writes: whole files only, and the permissions of a normal file under the umask."""

import os
import stat

import pytest

from lbench import _io


@pytest.fixture
def umask():
    def set_mask(mask):
        old = os.umask(mask)
        restore.append(old)

    restore = []
    yield set_mask
    for old in reversed(restore):
        os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_new_file_gets_normal_permissions_under_umask(tmp_path, umask, mask, mode):
    umask(mask)
    _io.atomic_write_text(tmp_path / "a.txt", "hello")
    _io.atomic_write_json(tmp_path / "b.json", {"x": 1})
    for name in ("a.txt", "b.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode
    assert (tmp_path / "a.txt").read_text() == "hello"


def test_replaced_file_keeps_its_permissions(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "pool.json"
    _io.atomic_write_text(path, "old")
    path.chmod(0o640)
    _io.atomic_write_text(path, "new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.read_text() == "new"


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    path = tmp_path / "x.json"
    _io.atomic_write_text(path, "old")

    def boom(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        _io.atomic_write(path, boom)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_stale_temps_of_interrupted_writes_are_removed_and_nothing_else(tmp_path):
    from lbench._io import remove_stale_temps

    (tmp_path / "a" / "b").mkdir(parents=True)
    stale = [tmp_path / ".pool.json.0123456789ab.tmp", tmp_path / "a" / "b" / ".rounds.jsonl.abcdefabcdef.tmp"]
    kept = [tmp_path / "notes.tmp", tmp_path / ".hidden", tmp_path / ".x.short.tmp", tmp_path / "pool.json"]
    for p in stale + kept:
        p.write_text("x")
    assert remove_stale_temps(tmp_path, recursive=False) == 1
    assert remove_stale_temps(tmp_path) == 1
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


def test_resume_removes_the_temp_files_a_crash_left(smoke_run, tmp_path, capsys):
    import shutil

    from tests.conftest import CONFIGS, run_cli

    out, cache = smoke_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    stale = run / "margin" / "seed_0" / ".pool.json.00aa11bb22cc.tmp"
    stale.write_text('{"half": ')  # an atomic write killed before its rename
    rc, _, err = run_cli(["run", "-c", str(CONFIGS / "smoke.yaml"), "--out_dir", str(run),
                          "--data.init_args.cache_dir", str(cache), "--report", "false"], capsys)  # fmt: skip
    assert rc == 0, err
    assert not stale.exists()
