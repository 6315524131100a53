"""The journal: a crash between journal and pool file is repaired, torn lines are cut,
concurrent imports lose nothing."""

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from lbench import _io
from lbench.label import import_answers, read_journal, sync_pool
from lbench.label.formats import Parsed
from lbench.locks import locked_dir
from lbench.pool import LabelPool

from .conftest import SIZE, label, make_project, snapshot

REPO = Path(__file__).resolve().parents[2]


def comparable(pool: LabelPool) -> dict:
    state = pool.state_dict()
    for h in state.get("history", []):
        h.pop("time"), h.pop("source")  # when, and the folder of the file, differ
    return state


def two_imports(folder: Path) -> tuple[Path, Path]:
    a, b = folder / "a.csv", folder / "b.csv"
    a.write_text("index,label\n4,cat\n5,skip\n10,dog\n")
    b.write_text("index,label\n6,bird\n7,unsure\n")
    return a, b


def test_crash_between_journal_and_pool_file_is_replayed(tmp_path, capsys, monkeypatch):
    # the reference: both imports without a crash
    ref_file = make_project(tmp_path / "ref")
    a, b = two_imports(tmp_path / "ref")
    assert label([a, "--pool", ref_file], capsys)[0] == 0
    assert label([b, "--pool", ref_file], capsys)[0] == 0
    reference = comparable(LabelPool.load(ref_file))

    pool_file = make_project(tmp_path / "crash")
    a, b = two_imports(tmp_path / "crash")
    old = pool_file.read_bytes()

    def crash(src, dst):
        raise OSError("simulated crash before rename")

    with monkeypatch.context() as m:  # the journal line is written, pool.json is not
        m.setattr(_io.os, "replace", crash)
        with pytest.raises(OSError, match="simulated crash"):
            label([a, "--pool", pool_file], capsys)
    assert pool_file.read_bytes() == old
    assert len(read_journal(pool_file.parent / "labels.journal.jsonl")) == 1
    assert sorted(p.name for p in pool_file.parent.iterdir()) == [
        "a.csv", "b.csv", "labels.journal.jsonl", "pool.json", "selected.csv"
    ]  # fmt: skip

    # the next import replays the journaled one first
    rc, out, _ = label([b, "--pool", pool_file], capsys)
    assert rc == 0 and out.startswith("note: replayed 1 label journal entry the pool file did not hold yet")
    assert comparable(LabelPool.load(pool_file)) == reference
    # importing the first file again is a no-op: it is in the pool
    rc, out, _ = label([a, "--pool", pool_file], capsys)
    assert rc == 0 and "note: 3 answers were already in the pool" in out
    assert comparable(LabelPool.load(pool_file)) == reference


def test_repair_without_a_file_and_sync_pool(tmp_path, capsys, monkeypatch):
    for name, repair in (("cli", "cli"), ("api", "api")):
        pool_file = make_project(tmp_path / name)
        a, _ = two_imports(tmp_path / name)

        def crash(self, path):
            raise OSError("simulated crash before the pool file is written")

        with monkeypatch.context() as m:
            m.setattr(LabelPool, "save", crash)
            with pytest.raises(OSError):
                label([a, "--pool", pool_file], capsys)
        assert LabelPool.load(pool_file).num_labeled == 2
        if repair == "cli":
            rc, out, _ = label(["--pool", pool_file], capsys)
            assert rc == 0 and "replayed 1" in out and out.splitlines()[-1].startswith("no label file; 3 still pending")
        else:
            with locked_dir(pool_file.parent, "pool", "wait"):
                assert sync_pool(pool_file) == 1
            assert sync_pool(pool_file) == 0
        pool = LabelPool.load(pool_file)
        assert pool.num_labeled == 4 and pool.skipped == {5: "skip"} and pool.journal_seq == 1


def test_torn_last_line_is_ignored_and_cut(project, capsys):
    a, b = two_imports(project.parent)
    assert label([a, "--pool", project], capsys)[0] == 0
    journal = project.parent / "labels.journal.jsonl"
    journal.write_bytes(journal.read_bytes() + b'{"seq":2,"time":"2026-')  # a crash during the append
    assert len(read_journal(journal)) == 1
    assert label([b, "--pool", project], capsys)[0] == 0
    lines = journal.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3 and b"2026-\n" not in journal.read_bytes()
    assert [e["seq"] for e in read_journal(journal)] == [1, 2]
    assert LabelPool.load(project).journal_seq == 2


def test_waits_for_the_lock_select_holds(project, capsys):
    f = project.parent / "a.csv"
    f.write_text("index,label\n4,cat\n")
    before = snapshot(project.parent)
    with locked_dir(project.parent, "pool", "wait"):  # e.g. `lbench select` scoring the pool
        rc, out, err = label([f, "--pool", project, "--wait", "0.2"], capsys)
    assert rc == 2 and out == "" and "is in use by another lbench process" in err and err.count("\n") == 1
    assert snapshot(project.parent) == before

    held = threading.Event()

    def hold():
        with locked_dir(project.parent, "pool", "wait"):
            held.set()
            time.sleep(0.5)

    t = threading.Thread(target=hold)
    t.start()
    held.wait()
    t0 = time.monotonic()
    rc, _, _ = label([f, "--pool", project, "--wait", "20"], capsys)
    t.join()
    assert rc == 0 and time.monotonic() - t0 >= 0.3
    assert LabelPool.load(project).labels[4] == 0


WORKER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from lbench.pool import LabelPool
    from lbench.label.cli import main

    save = LabelPool.save
    def slow_save(self, path):  # widen the window between reading and writing the pool file
        time.sleep(0.3)
        save(self, path)
    LabelPool.save = slow_save
    folder, k = Path(sys.argv[1]), sys.argv[2]
    (folder.parent / f"ready_{k}").touch()
    while not (folder.parent / "go").exists():
        time.sleep(0.01)
    sys.exit(main([str(folder / f"answers_{k}.csv"), "--pool", str(folder / "pool.json"), "--annotator", k]))
    """
)


def test_concurrent_imports_lose_no_answer(tmp_path):
    pool_file = make_project(tmp_path / "p")
    n = 3
    expected = {}
    for k in range(n):
        items = [4 + 4 * k, 5 + 4 * k, 6 + 4 * k, 7 + 4 * k]
        rows = [f"{i},{['cat', 'dog', 'bird', 'skip'][j]}" for j, i in enumerate(items)]
        (tmp_path / "p" / f"answers_{k}.csv").write_text("index,label\n" + "\n".join(rows) + "\n")
        expected.update({i: j for j, i in enumerate(items)})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / "p"), str(k)], env=env, cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for k in range(n)
    ]  # fmt: skip
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready_{k}").exists() for k in range(n)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.05)
    (tmp_path / "go").touch()
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * n, results
    pool = LabelPool.load(pool_file)
    for i, j in expected.items():
        if j == 3:
            assert pool.skipped[i] == "skip" and pool.labels[i] == -1
        else:
            assert int(pool.labels[i]) == j, (i, results)
    assert pool.num_labeled == 2 + 3 * n and pool.pending == []
    entries = read_journal(tmp_path / "p" / "labels.journal.jsonl")
    assert [e["seq"] for e in entries] == [1, 2, 3] and sorted(e["annotator"] for e in entries) == ["0", "1", "2"]
    assert pool.journal_seq == 3 and [h["annotator"] for h in pool.history] == [e["annotator"] for e in entries]


def test_a_program_uses_the_same_path(project):
    """A simulated oracle (or a labeling page) imports through import_answers: same journal, same checks."""
    out = import_answers(project, Parsed.from_answers([4, 5, 9], [2, 0, "unsure"], source="oracle"), annotator="oracle")
    assert out.seq == 1 and out.plan.outside == [9]
    pool = LabelPool.load(project)
    assert pool.labels[[4, 5]].tolist() == [2, 0] and pool.skipped == {9: "unsure"}
    (entry,) = read_journal(project.parent / "labels.journal.jsonl")
    assert entry["source"] == "oracle" and entry["annotator"] == "oracle" and "sha256" not in entry
    assert pool.size == SIZE
