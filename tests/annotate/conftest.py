"""A small image project with an open batch, and a test client of its labeling page."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lbench.annotate.app import AnnotateSession, create_app
from lbench.annotate.project import find_project
from lbench.batch_export import BatchItem, batch_csv
from lbench.pool import LabelPool
from tests.test_init import run_init, write_photos

#: The open batch of :func:`make_project`, in rank order (pool indices of unlabeled images).
BATCH_SIZE = 6


def make_project(root: Path, capsys) -> Path:
    """``lbench init`` on :func:`write_photos` (12 images, cat/ and dog/ with 2 each), then a batch of 6.

    The batch is what ``select`` leaves (pool.json's pending list, ``batch_001.csv``) without its
    proxy training, written with the same ``batch_csv``; its ranks run in reverse index order.
    Returns the project folder.
    """
    photos = write_photos(root / "photos")
    out = root / "proj"
    rc, _, err = run_init([photos, "--out", out, "--image_size", "32", "--classes", "cat,dog"], capsys)
    assert rc == 0, err
    pool = LabelPool.load(out / "pool.json")
    batch = pool.unlabeled_index().tolist()[:BATCH_SIZE][::-1]
    files = (out / "index.txt").read_text().splitlines()[1:]
    items = [BatchItem(r, i, files[i], files[i], ["cat", "dog"][r % 2], 0.5 + r / 20, 0.1) for r, i in enumerate(batch)]
    (out / "batch_001.csv").write_bytes(batch_csv(items))
    pool.pending = sorted(batch)
    pool.save(out / "pool.json")
    return out


def batch_of(project: Path) -> list[int]:
    """The batch's pool indices in rank order."""
    lines = (project / "batch_001.csv").read_text().splitlines()[1:]
    return [int(line.split(",")[1]) for line in lines]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def project(tmp_path, capsys) -> Path:
    """The folder of a fresh project with an open batch of 6 (see :func:`make_project`)."""
    return make_project(tmp_path, capsys)


def page_client(project: Path, annotator: str = "ana"):
    """A Flask test client of the page of ``project`` (a new server: nothing given on it yet)."""
    session = AnnotateSession(find_project(project / "project.yaml", None), annotator, source="test page", wait=5)
    return create_app(session).test_client()


@pytest.fixture
def client(project):
    """A test client of the project's page."""
    return page_client(project)


def labels_of(pool_file: Path, index: list[int]) -> list[int]:
    """The labels (-1: none) of ``index`` in the pool file."""
    return LabelPool.load(pool_file).labels[torch.tensor(index)].tolist()
