"""``lbench annotate``: refusals are one line, exit 2, nothing written; the server prints its URL, Ctrl-C stops it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lbench.cli import main
from lbench.pool import LabelPool
from tests.test_init import run_init, write_photos

from .conftest import batch_of, snapshot

REPO = Path(__file__).resolve().parents[2]


def annotate(args, capsys):
    rc = main(["annotate", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_help_and_registration(capsys):
    rc, out, _ = annotate(["--help"], capsys)
    assert rc == 0 and "usage: lbench annotate" in out and "127.0.0.1" in out
    assert main(["--help"]) == 0
    assert "  annotate" in capsys.readouterr().out


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give the project: -c PROJECT_DIR/project.yaml"),
        (["-c", "{tmp}/nope.yaml"], "project config {tmp}/nope.yaml does not exist"),
        (["--pool", "{tmp}/nope/pool.json"], "no project.yaml next to {tmp}/nope/pool.json"),
        (["-c", "{proj}/project.yaml", "--port", "70000"], "--port must be in 0 .. 65535"),
        (["-c", "{proj}/project.yaml", "--annotator", "a<b>"], "--annotator 'a<b>': use letters, digits"),
        (["-c", "{proj}/project.yaml", "--port", "{busy}"], "port {busy} on 127.0.0.1 is in use"),
        (["-c", "{proj}/project.yaml", "--host", "no.such.host.invalid"], "cannot listen on no.such.host.invalid"),
        (["-c", "{proj}/project.yaml", "--bogus"], "unrecognized arguments: --bogus"),
        (["-c", "{idle}/project.yaml"], "nothing to label: {idle}/pool.json has no pending items; run lbench select"),
        (["--pool", "{idle}/pool.json"], "nothing to label"),
    ],
)
def test_refusals_are_one_line_exit_2_and_write_nothing(project, tmp_path, capsys, busy_port, args, message):
    idle = tmp_path / "idle"  # a project with nothing pending (init, no select)
    assert run_init([write_photos(tmp_path / "photos2"), "--out", idle, "--image_size", "32"], capsys)[0] == 0
    names = {"tmp": tmp_path, "proj": project, "busy": busy_port, "idle": idle}
    before = snapshot(tmp_path)
    rc, out, err = annotate([a.format(**names) for a in args], capsys)
    assert rc == 2 and out == ""
    assert err.startswith("lbench: error: ") and err.count("\n") == 1
    assert message.format(**names) in err, err
    assert snapshot(tmp_path) == before


def test_serves_prints_the_url_and_stops_cleanly_on_ctrl_c(project):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "lbench", "annotate", "-c", str(project / "project.yaml"), "--port", "0",
           "--annotator", "ana"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        first = proc.stdout.readline()
        url = proc.stdout.readline().strip()
        assert "6 items, 0 answered" in first, (first, proc.stderr.read() if proc.poll() is not None else "")
        assert url.startswith("http://127.0.0.1:") and url.endswith("/") and not url.endswith(":0/")
        with urllib.request.urlopen(url + "api/state", timeout=10) as r:
            assert json.load(r)["total"] == 6
        index = batch_of(project)[0]
        req = urllib.request.Request(url + "api/answer", data=json.dumps({"index": index, "label": "dog"}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.load(r)["seq"] == 1
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped; 1 answers given on the page" in out
    assert int(LabelPool.load(project / "pool.json").labels[index]) == 1
    assert LabelPool.load(project / "pool.json").history[-1]["source"] == f"lbench annotate {url}"
