"""Damaged, foreign or unwritable caches and failing encoders or disks: one-line CacheErrors."""

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

import lbench.cache.build as build
from lbench.cache import EmbeddingCache
from lbench.errors import CacheError
from lbench.views import ViewRecipe

from .conftest import CountingEncoder, NaNEncoder, store_digests


def cache(root, **kw):
    return EmbeddingCache(root, **{"batch_size": 16, "checkpoint_every": 2, "progress": False, **kw})


def one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text
    return text


def test_truncated_file_is_refused_not_extended(tmp_path, digits):
    _, test = digits
    c = cache(tmp_path)
    path = c.ensure(test, CountingEncoder()).path(0)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 1000)
    with pytest.raises(CacheError, match=f"{path} is truncated .* delete") as e:
        c.load_or_build(test, CountingEncoder())
    one_line(e)
    assert path.stat().st_size == size - 1000  # never silently extended with zeros


def test_wrong_dtype_names_both_dtypes(tmp_path, digits):
    _, test = digits
    c = cache(tmp_path)
    path = c.ensure(test, CountingEncoder()).path(0)
    np.save(path, np.zeros((len(test), 64), np.float32))
    with pytest.raises(CacheError, match="holds float32 values, expected float16"):
        c.load_or_build(test, CountingEncoder())


@contextlib.contextmanager
def read_only(folder: Path):
    """The folder and its files cannot be written (as root: an unprivileged effective user)."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    os.seteuid(65534)  # nobody: may read (0755 folders, 0644 files) but not write root's files
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.fixture
def shared_tmp():
    """A folder every user can reach (a root-owned pytest tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="lbench-ro-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_read_only_cache_reads_and_says_read_only_when_incomplete(shared_tmp, digits):
    _, test = digits
    c = cache(shared_tmp / "cache")
    expected = c.load_or_build(test, CountingEncoder())
    folder = c.folder(test, CountingEncoder())
    with read_only(folder):
        z = c.load_or_build(test, CountingEncoder())  # complete: readable without write access
        with pytest.raises(CacheError, match=f"cache folder {folder} is read-only .*incomplete") as e:
            c.ensure(test, CountingEncoder(), ViewRecipe(weak_views=1))
    assert (z == expected).all()
    assert "unreadable" not in one_line(e) and "delete" not in one_line(e)


def test_meta_missing_beside_store_files(tmp_path, digits):
    _, test = digits
    c = cache(tmp_path)
    folder = c.ensure(test, CountingEncoder()).folder
    (folder / "meta.json").unlink()
    with pytest.raises(CacheError, match=f"cache folder {folder} has store files but no meta.json.*delete"):
        c.load_or_build(test, CountingEncoder())


def test_meta_from_another_data_set(tmp_path, digits):
    pool, test = digits
    c = cache(tmp_path)
    pool_folder = c.ensure(pool, CountingEncoder()).folder
    test_folder = c.ensure(test, CountingEncoder()).folder
    shutil.copy(test_folder / "meta.json", pool_folder / "meta.json")
    with pytest.raises(CacheError, match="belongs to another cache .*split 'digits-test', not 'digits-train'.*delete"):
        c.load_or_build(pool, CountingEncoder())


def test_values_damaged_after_the_build_are_detected_when_loaded(tmp_path, digits):
    _, test = digits
    c = cache(tmp_path)
    recipe = ViewRecipe(weak_views=1)
    store = c.ensure(test, CountingEncoder(), recipe)
    weak = np.load(store.path(1), mmap_mode="r+")
    weak[100, 3] = np.nan
    weak.flush()
    del weak
    again = c.ensure(test, CountingEncoder(), recipe)
    assert again.view(0) is not None  # the other view is fine
    with pytest.raises(CacheError, match=r"damaged after it was built: view weak0 chunk 3 .*non-finite.*row 100"):
        again.view(1)
    plain = np.load(store.path(0), mmap_mode="r+")
    plain[5, 5] += 1
    plain.flush()
    del plain
    with pytest.raises(CacheError, match="chunk 0 .*differ from the ones built"):
        c.load_or_build(test, CountingEncoder())


def test_non_finite_chunk_is_refused_and_never_marked_done(tmp_path, digits):
    _, test = digits
    c = cache(tmp_path)
    with pytest.raises(CacheError) as e:
        c.ensure(test, NaNEncoder(bad_from_call=3), ViewRecipe())
    msg = one_line(e)
    assert "NaNEncoder" in msg and "digits-test" in msg and "view plain" in msg and "chunk 1 " in msg
    meta = json.loads((c.folder(test, CountingEncoder()) / "meta.json").read_text())
    assert list(meta["views"]["plain"]["done"]) == ["0"]
    with pytest.raises(CacheError, match="non-finite"):  # still refused on the next run, never reused
        c.load_or_build(test, NaNEncoder(bad_from_call=1))
    enc = CountingEncoder()
    c.load_or_build(test, enc)
    assert enc.rows == len(test) - 32  # chunk 0 kept


def test_disk_full_mid_chunk_keeps_the_finished_chunks(tmp_path, digits, monkeypatch):
    _, test = digits
    recipe = ViewRecipe(weak_views=1)
    clean = cache(tmp_path / "clean").ensure(test, CountingEncoder(), recipe)
    calls = {"n": 0}
    real = build.write_rows

    def full_disk(array, start, values):
        calls["n"] += 1
        if calls["n"] == 6:  # the 2nd batch of chunk 2 of the plain view
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(array, start, values)

    monkeypatch.setattr(build, "write_rows", full_disk)
    c = cache(tmp_path / "full")
    with pytest.raises(CacheError, match="No space left on device.*rerun.*2 chunks finished") as e:
        c.ensure(test, CountingEncoder(), recipe)
    one_line(e)
    meta = json.loads((c.folder(test, CountingEncoder()) / "meta.json").read_text())
    assert list(meta["views"]["plain"]["done"]) == ["0", "1"]
    monkeypatch.setattr(build, "write_rows", real)
    enc = CountingEncoder()
    store = c.ensure(test, enc, recipe)
    assert enc.rows == 2 * len(test) - 64
    assert store_digests(store) == store_digests(clean)


def test_meta_write_failure_is_a_cache_error(tmp_path, digits, monkeypatch):
    _, test = digits
    c = cache(tmp_path)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("lbench.cache.meta.atomic_write_json", full)
    with pytest.raises(CacheError, match="cannot write the embedding cache .*No space left"):
        c.load_or_build(test, CountingEncoder())
