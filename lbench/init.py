"""``lbench init FOLDER [--classes a,b,c] [--labels FILE.csv] [--out PROJECT_DIR] [--image_size N]``: a project.

Writes ``PROJECT_DIR/project.yaml`` (a config for ``lbench fit|select -c``: an
:class:`~lbench.data.embeddings.EmbeddingDataModule` over an :class:`~lbench.data.project.ImageProject`
with the offline EfficientNet-Lite0 encoder and a linear :class:`~lbench.modules.ProxyClassifier`),
``PROJECT_DIR/index.txt`` (the stable pool indices) and ``PROJECT_DIR/pool.json`` (the class names
and the labels of the images already in class sub-folders, at round 0). ``--labels FILE.csv``
(columns ``path,label``, paths relative to FOLDER) seeds the pool with more labels through the one
validated import (:func:`lbench.label.import_answers`), journaled in ``labels.journal.jsonl`` with
the file's name as annotator. Everything is checked before anything is written.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
import yaml

from lbench._io import atomic_write, atomic_write_text, check_writable
from lbench._subcommand import SubcommandParser, run_subcommand
from lbench.data.project import UNLABELED_DIR, ImageProject, check_class_names
from lbench.errors import ConfigError, DataError, LbenchError
from lbench.label import JOURNAL_NAME, import_answers, read_label_file
from lbench.pool import LabelPool
from lbench.stopping import STOP_FILE

__all__ = ["DEFAULT_OUT", "build_parser", "main", "project_config"]

#: Default project folder, inside FOLDER (excluded from the pool because it holds the index).
DEFAULT_OUT = "lbench_project"
_FILES = ("project.yaml", "pool.json", "index.txt", JOURNAL_NAME)
#: What ``select`` wrote into a project (removed by ``init --force``: they describe the old pool).
_OUTPUTS = ("proxy.ckpt", "proxy.json", STOP_FILE, "selected.csv")
_BATCH_FILE = re.compile(r"^batch_\d+\.(csv|png|labelstudio\.json)$")
#: A labels file at the root of FOLDER with this name is pointed out (never read without ``--labels``).
LABELS_NAME = "labels.csv"

_EPILOG = f"""\
FOLDER holds the images, flat or nested. Images in a top-level sub-folder named like a class
(FOLDER/cat/x.jpg) are already labeled; all others are unlabeled ('{UNLABELED_DIR}/' is never a class).
Classes come from --classes (label order) or else from the top-level sub-folders (sorted).
Files that are not images or cannot be decoded are listed and skipped. New files added to FOLDER
later are appended to the pool with new indices; old indices never change.

--labels FILE.csv labels more images at the start: a CSV with a header 'path,label' (path relative to
FOLDER, or 'index,label'), validated as `lbench label` validates a file (known paths, labels among the
classes, no repeated or conflicting rows, and no label that contradicts an image's class folder); any
problem is one error line and nothing is written. A {LABELS_NAME} in FOLDER is never read without --labels.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``init`` subcommand."""
    p = SubcommandParser(
        prog="lbench init",
        description="Make an active-learning project of an image folder: a config, the pool index and pool.json.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", metavar="FOLDER", help="the image folder")
    p.add_argument("--classes", metavar="A,B,C", help="class names in label order (default: the class sub-folders)")
    p.add_argument("--out", metavar="PROJECT_DIR", help=f"project folder (default: FOLDER/{DEFAULT_OUT})")
    p.add_argument(
        "--image_size",
        "--image-size",
        type=int,
        default=224,
        metavar="N",
        help="images are read at N x N (centre crop) and embedded at that size (default: 224)",
    )
    p.add_argument(
        "--test_dir",
        "--test-dir",
        metavar="SUBFOLDER",
        help="sub-folder of FOLDER with labeled test images (SUBFOLDER/<class>/...), excluded from the pool",
    )
    p.add_argument(
        "--labels",
        metavar="FILE.csv",
        help="a CSV (path,label; paths relative to FOLDER) of labels to start with, imported as `lbench label` does",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing project (its labels are lost)")
    return p


def project_config(project: ImageProject, out: Path, image_size: int) -> dict[str, Any]:
    """The ``project.yaml`` content: trainer (with checkpoints under ``out/fit``), model and data."""
    return {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "auto",
            "devices": 1,
            "max_epochs": 10,
            "enable_checkpointing": True,
            "log_every_n_steps": 5,
            "default_root_dir": str(out / "fit"),
            "callbacks": [{"class_path": "ModelCheckpoint", "init_args": {"save_last": True}}],
        },
        "model": {"class_path": "ProxyClassifier", "init_args": {"lr": 0.003, "weight_decay": 0.01}},
        "data": {
            "class_path": "EmbeddingDataModule",
            "init_args": {
                "dataset": {
                    "class_path": "ImageProject",
                    "init_args": {
                        "root": str(project.root),
                        "classes": list(project.class_names),
                        "test_dir": project.test_dir,
                        "image_size": image_size,
                        "index_file": str(out / "index.txt"),
                    },
                },
                "encoder": {
                    "class_path": "EfficientNetLite0Encoder",
                    "init_args": {"image_size": image_size, "features": "head", "weights": "packaged"},
                },
                "cache_dir": str(out / "cache"),
                "pool_file": str(out / "pool.json"),
                "batch_size": 64,
                "samples_per_epoch": 512,
                "embed_batch_size": 32,
            },
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Run the ``init`` subcommand.

    Args:
        argv: Arguments after ``init``; None reads ``sys.argv`` (without a leading ``init``).

    Returns:
        0 on success, 2 on a user error (one line ``lbench: error: ...`` on stderr, nothing written).
    """
    return run_subcommand("init", argv, build_parser(), init_project)


def init_project(args: argparse.Namespace) -> list[str]:
    """Check everything, then write the project; returns the lines to print.

    Raises:
        LbenchError: A missing or empty folder, an existing project (without ``--force``), bad or
            duplicate class names, no classes, a bad image size, an unwritable project folder.
    """
    folder = Path(args.folder)
    if not folder.is_dir():
        raise ConfigError(f"image folder {folder} does not exist or is not a folder")
    if args.image_size < 32:
        raise ConfigError(f"--image_size must be at least 32 (the encoder's minimum), got {args.image_size}")
    out = (Path(args.out) if args.out else folder / DEFAULT_OUT).absolute()
    existing = [name for name in _FILES if (out / name).exists()]
    if existing and not args.force:
        raise ConfigError(f"{out} already holds a project ({', '.join(existing)}); use --force to start it over")
    classes = None
    if args.classes is not None:
        classes = check_class_names([c.strip() for c in args.classes.split(",")])
    check_writable(out / "project.yaml")
    with tempfile.TemporaryDirectory(prefix="lbench-init-") as tmp:
        index = Path(tmp) / "index.txt"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # the project's own index file (so the project folder is excluded from the pool and from the
            # classes), but read and written in a temporary copy until every check has passed
            project = ImageProject(str(folder), classes=classes, test_dir=args.test_dir, image_size=args.image_size,
                                   index_file=str(out / "index.txt"))  # fmt: skip
            project.index_file = index
            split = project.pool_split()
            initial = project.initial_labels()
            test_n = len(project.test_split()) if args.test_dir is not None else None
        if len(split) == 0:  # pool_split raises first; kept for clarity
            raise ConfigError(f"image folder {folder} holds no images")
        pool = LabelPool(len(split), project.num_classes)
        pool.set_class_names(list(project.class_names))
        seeded = 0
        journal: bytes | None = None
        if args.labels is not None:
            pool, seeded, journal = _import_labels(Path(args.labels), pool, split.files, initial, Path(tmp))
        rest = sorted(i for i in initial if pool.labels[i] < 0)  # class-folder labels the CSV did not repeat
        if rest:
            pool.add_labels(torch.tensor(rest), torch.tensor([initial[i] for i in rest]), round=0)
        config = project_config(project, out, args.image_size)
        text = f"# lbench project over {project.root} (written by lbench init)\n" + yaml.safe_dump(
            config, sort_keys=False, allow_unicode=True
        )
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(index, out / "index.txt")
    atomic_write_text(out / "project.yaml", text)
    if journal is not None:  # before pool.json, as `label` commits: the journal first
        atomic_write(out / JOURNAL_NAME, lambda f: f.write(journal))
    else:  # --force: an old journal would be replayed into the new pool
        with contextlib.suppress(FileNotFoundError):
            os.remove(out / JOURNAL_NAME)
    removed = _remove_old_outputs(out) if args.force else []
    pool.save(out / "pool.json")
    counts = pool.label_counts()
    lines = [f"warning: {w.message}" for w in caught]
    skipped = split.skipped
    lines.append(
        f"found {len(split)} images in {project.root}: {len(initial)} already labeled, {len(split) - len(initial)} "
        f"unlabeled; {len(skipped)} files skipped (not images or broken)"
        + (f"; {test_n} test images in {args.test_dir}" if test_n is not None else "; no test split")
    )
    if args.labels is not None:
        lines.append(
            f"labels from {args.labels}: {seeded} images labeled"
            + (f", {len(pool.skipped)} skip/unsure" if pool.skipped else "")
            + f" (journaled in {out / JOURNAL_NAME}, annotator {Path(args.labels).name!r}); "
            f"{pool.num_labeled} labeled in all"
        )
    elif (project.root / LABELS_NAME).is_file():
        lines.append(f"note: {project.root / LABELS_NAME} was not read; to start with its labels: lbench init "
                     f"{args.folder} --labels {project.root / LABELS_NAME} --force ...")  # fmt: skip
    lines.append("classes: " + ", ".join(f"{c} ({n})" for c, n in zip(project.class_names, counts, strict=True)))
    if classes is not None:
        others = sorted(
            p.name
            for p in project.root.iterdir()
            if p.is_dir()
            and not p.name.startswith(".")
            and p.name not in classes
            and p.absolute() != out
            and p.name != args.test_dir  # fmt: skip
        )
        if others:
            lines.append(f"note: sub-folders that are not classes (their images are unlabeled): {', '.join(others)}")
    lines.append(f"wrote {out / 'project.yaml'}, {out / 'pool.json'} and {out / 'index.txt'}")
    if removed:
        lines.append(f"removed what select wrote for the old project: {', '.join(removed)}")
    budget = max(1, min(20, len(split) - pool.num_labeled))
    lines.append(f"next (cold start): lbench select -c {out / 'project.yaml'} --query TypiClust --budget {budget}")
    return lines


def _import_labels(
    path: Path, pool: LabelPool, files: list[str], initial: dict[int, int], tmp: Path
) -> tuple[LabelPool, int, bytes | None]:
    """Import a labels CSV into ``pool`` (no labels yet) in ``tmp``; returns the pool, the count and the journal.

    The file goes through :func:`~lbench.label.import_answers` (paths resolved with an ``index,path``
    map of the pool, so the checks and messages are ``lbench label``'s), then every answer for an
    image in a class folder must be that class.

    Raises:
        LbenchError: The file is missing or bad, or contradicts a class folder (one line).
    """
    if not path.is_file():
        raise ConfigError(f"--labels {path} does not exist")
    parsed = read_label_file(path, "csv")
    ids = io.StringIO()
    w = csv.writer(ids)
    w.writerow(["index", "path"])
    w.writerows(enumerate(files))
    (tmp / "ids.csv").write_text(ids.getvalue(), encoding="utf-8")
    pool_file = tmp / "pool.json"
    pool.save(pool_file)
    try:
        outcome = import_answers(pool_file, parsed, annotator=path.name, ids_from=[tmp / "ids.csv"], wait=0)
    except LbenchError as e:  # `lbench label`'s hints, said for init
        message = str(e).replace(
            f" (ids known from: {tmp / 'ids.csv'}; add a CSV with index and id columns with --ids_from)",
            " (not an image of the folder: paths are relative to FOLDER)",
        )
        message = message.replace("; add --allow_new_classes to add it as a new class", "; name it in --classes")
        raise type(e)(message) from e
    done = outcome.pool
    names = list(done.class_names or [])
    for i, y in outcome.plan.rows:
        if i in initial and y != initial[i]:
            said = names[y] if isinstance(y, int) else y
            raise DataError(
                f"--labels {path}: {files[i]} is in the class folder {names[initial[i]]!r} but the file says "
                f"{said!r}; fix the file or move the image"
            )
    journal = (tmp / JOURNAL_NAME).read_bytes() if outcome.seq is not None else None
    return done, outcome.plan.count("label"), journal


def _remove_old_outputs(out: Path) -> list[str]:
    """``init --force``: remove the old project's proxy, stop set and batch files; the names removed.

    They describe the old pool (a kept ``proxy.ckpt`` was trained on it, the batches list its items),
    and the new batches are numbered from 1 again. Other files in the folder are left alone.
    """
    removed = []
    csvs = {p.name.split(".")[0] for p in out.glob("batch_*.csv")}
    for path in sorted(out.iterdir()):
        batch = _BATCH_FILE.match(path.name)
        if batch and path.suffix != ".csv" and path.name.split(".")[0] not in csvs:
            continue  # a batch picture without its batch list: not ours (the project may sit among the images)
        if path.is_file() and (path.name in _OUTPUTS or batch):
            path.unlink()
            removed.append(path.name)
    return removed
