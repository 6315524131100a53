"""A person's own image folder as a pool: :class:`ImageProject`.

The pool is every image file under ``root``, flat or nested, labeled or not. Images inside a
top-level sub-folder named like a class (``<root>/cat/x.jpg``) are *already labeled* with that
class (:meth:`ImageProject.initial_labels`); every other image is unlabeled. The pool's
``targets`` are unknown (all ``-1``): a person labels this pool (``lbench label``), never a
simulated oracle, so it serves ``fit``/``select``/``label``, not ``run``.

**Stable indices.** The global index of an image is its line in an *index file* (default
``<root>/.lbench/index.txt``; ``lbench init`` puts it in the project folder), which lists relative
paths in first-seen order. Opening the pool again after files were added appends the new ones
(sorted among themselves), so every earlier index, and so ``pool.json`` and every ``selected.csv``,
stays valid. A file that disappeared keeps its index: it is reported (one warning line) and never
served (reading it raises :class:`~lbench.errors.DataError` naming the file). The index file is
appended to under an ``flock`` (concurrent processes and DDP ranks agree on it) and a torn last
line from a crash is dropped before the next append.

**Bad files.** Files whose name is not an image's (``notes.txt``) and image files PIL cannot decode
(each new file is decoded once when first seen) are listed in one warning and left out of the
index (``on_bad_image="skip"``, the default), never silently; with ``on_bad_image="error"`` a new
file that cannot be decoded is an error naming it. A skipped file that becomes readable later
is indexed then (appended). Hidden files and folders (``.name``), the test folder and the folder
holding the index file are not part of the pool.

**No test split by default.** Without ``test_dir``, :meth:`ImageProject.test_split` raises a
DataError saying so; ``select --train true`` then estimates the proxy's accuracy on the labeled
set by stratified k-fold cross-validation (:mod:`lbench.heldout`) and says it is not a test score.
"""

from __future__ import annotations

import fcntl
import os
import warnings
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from lbench.data.base import ImageSplit, PoolDataset
from lbench.data.files import FileSplit, OnBadImage, load_image_file
from lbench.data.folder import IMAGE_SUFFIXES
from lbench.data.manifest import digest_strings
from lbench.errors import ConfigError, DataError

__all__ = ["INDEX_HEADER", "UNLABELED_DIR", "ImageProject", "ProjectSplit", "check_class_names"]

#: First line of an index file.
INDEX_HEADER = "# lbench.ImageProject index/1: one image path (relative to the folder) per line, in index order"
#: A top-level folder of this name is never a class (a conventional home for unlabeled images).
UNLABELED_DIR = "unlabeled"


def check_class_names(names: list[str] | tuple[str, ...]) -> list[str]:
    """Validate class names: not empty, distinct, no commas or line breaks.

    Raises:
        ConfigError: A bad or repeated name (the message names it).
    """
    out = [str(n) for n in names]
    for n in out:
        if not n.strip() or n != n.strip() or any(c in n for c in ",\n\r\t"):
            raise ConfigError(f"bad class name {n!r}: names must be non-empty, without commas or outer spaces")
    seen: set[str] = set()
    for n in out:
        if n in seen:
            raise ConfigError(f"class name {n!r} is given twice")
        seen.add(n)
    return out


class ProjectSplit(ImageSplit):
    """The pool of an :class:`ImageProject`: image files in index order, some possibly missing.

    Attributes:
        files: Relative paths (POSIX), one per index.
        present: ``[N]`` bool, False for indexed files that no longer exist (never served).
        targets: ``[N]`` int64, all ``-1`` (unknown: a person labels this pool).
        skipped: ``(relative path, reason)`` of the files left out of the index.
    """

    def __init__(
        self,
        name: str,
        root: Path,
        files: list[str],
        present: list[bool],
        sizes: list[int],
        mtimes: list[int],
        mode: str,
        image_size: int | None,
        skipped: list[tuple[str, str]],
        fingerprint: dict[str, Any],
    ) -> None:
        self.name = name
        self.root = root
        self.files = files
        self.present = torch.tensor(present, dtype=torch.bool)
        self.targets = torch.full((len(files),), -1, dtype=torch.int64)
        self.mode = mode
        self.image_size = image_size
        self.skipped = skipped
        self.fingerprint = fingerprint
        self._sizes = np.asarray(sizes, dtype=np.int64)
        self._mtimes = np.asarray(mtimes, dtype=np.int64)

    @property
    def missing(self) -> list[int]:
        """Indices of the indexed files that no longer exist."""
        return torch.nonzero(~self.present).flatten().tolist()

    def path(self, i: int) -> Path:
        """Path of file ``i``."""
        return self.root / self.files[i]

    def load_image(self, i: int) -> Tensor:
        """Decode file ``i``.

        Raises:
            DataError: The file was removed, or cannot be decoded (the message names it).
        """
        if not bool(self.present[i]):
            raise DataError(
                f"image file {self.path(i)} (item {i} of {self.name}) was removed from the folder; its index is "
                "kept so that labels stay valid: put the file back to use it"
            )
        try:
            return load_image_file(self.path(i), self.mode, self.image_size)
        except DataError as e:
            raise DataError(f"{e} (item {i} of {self.name}); fix or replace the file") from e

    def item_id(self, i: int) -> str:
        """The file's path relative to the folder."""
        return self.files[i]

    def manifest(self) -> dict[str, Any]:
        """Ids, sizes and modification times of the files (``missing`` for removed ones)."""
        sizes, mtimes, present = self._sizes.tolist(), self._mtimes.tolist(), self.present.tolist()
        rows = zip(self.files, sizes, mtimes, present, strict=True)
        lines = (f"{f}\t{s}\t{m}" if p else f"{f}\tmissing" for f, s, m, p in rows)
        return {
            "kind": "image_project",
            "n": len(self),
            "mode": self.mode,
            "image_size": self.image_size,
            "items": digest_strings(lines),
        }


class ImageProject(PoolDataset):
    """A folder of a person's images as a pool (labeled by a person), with an optional test split.

    See the module docstring for the layout, the stable indices and how bad files are handled.
    There is no simulated oracle for this pool (its targets are ``-1``): a person labels it with
    ``lbench label``; ``lbench init FOLDER`` writes a project (config, index and ``pool.json``
    with the already-labeled images).

    Args:
        root: The image folder.
        classes: Class names in label order; default: the top-level sub-folders of ``root``
            (sorted; hidden ones, ``test_dir``, ``unlabeled`` and the index file's folder excluded).
        test_dir: Sub-folder of ``root`` (or another folder) holding a labeled test split as
            ``<test_dir>/<class>/<image files>``; excluded from the pool. None: no test split
            (``select --train true`` then prints a cross-validated estimate on the labeled set, :mod:`lbench.heldout`).
        image_size: Shorter side resized to this and the centre square cropped when an image is
            read (None keeps each file's size; images then must share one size to batch).
        mode: ``RGB`` or ``L`` (grey).
        on_bad_image: ``skip`` (files that cannot be decoded are listed in a warning and not
            indexed) or ``error`` (such a file is an error naming it).
        index_file: The index file (default ``<root>/.lbench/index.txt``); its folder is excluded
            from the pool when it lies inside ``root``.

    Raises:
        ConfigError: Bad class names, ``mode``, ``image_size`` or ``on_bad_image``.
        DataError: ``root`` is not a folder, or there are no classes at all.
    """

    #: The pool may gain items between runs (new files get new indices at the end).
    grows: ClassVar[bool] = True

    def __init__(
        self,
        root: str,
        classes: list[str] | None = None,
        test_dir: str | None = None,
        image_size: int | None = 224,
        mode: Literal["RGB", "L"] = "RGB",
        on_bad_image: OnBadImage = "skip",
        index_file: str | None = None,
    ) -> None:
        if mode not in ("RGB", "L"):
            raise ConfigError(f"mode must be RGB or L, got {mode!r}")
        if on_bad_image not in ("error", "skip"):
            raise ConfigError(f"on_bad_image must be 'error' or 'skip', got {on_bad_image!r}")
        if image_size is not None and image_size <= 0:
            raise ConfigError(f"image_size must be positive, got {image_size}")
        self.root = Path(root).absolute()
        if not self.root.is_dir():
            raise DataError(f"image folder {root} does not exist or is not a folder")
        self.test_dir = test_dir
        self.image_size = image_size
        self.mode = mode
        self.on_bad_image = on_bad_image
        self.index_file = Path(index_file).absolute() if index_file else self.root / ".lbench" / "index.txt"
        self._excluded = {p for p in (self._test_folder(), self.index_file.parent) if p is not None}
        if classes is None:
            found = sorted(
                p.name
                for p in self.root.iterdir()
                if p.is_dir() and not p.name.startswith(".") and p.name != UNLABELED_DIR and p not in self._excluded
            )
            self.class_names = tuple(found)
        else:
            self.class_names = tuple(check_class_names(list(classes)))
        if not self.class_names:
            raise DataError(
                f"no classes for {root}: name them (classes: [a, b, c], or lbench init --classes a,b,c) or put "
                "already-labeled images in one sub-folder per class"
            )
        self._pool: ProjectSplit | None = None

    @property
    def has_test_split(self) -> bool:
        """Whether a test folder was given."""
        return self.test_dir is not None

    def _test_folder(self) -> Path | None:
        return None if self.test_dir is None else (self.root / self.test_dir).absolute()

    # -- the pool ---------------------------------------------------------------------------
    def _scan(self) -> tuple[list[str], list[tuple[str, str]]]:
        """Relative paths of the candidate image files (sorted) and the files that are not images by name."""
        images, other = [], []
        for dirpath, dirnames, filenames in os.walk(self.root):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d) not in self._excluded)
            for f in filenames:
                if f.startswith("."):
                    continue
                rel = (here / f).relative_to(self.root).as_posix()
                if "\n" in rel or "\r" in rel:
                    other.append((rel, "line break in the name"))
                elif Path(f).suffix.lower() in IMAGE_SUFFIXES:
                    images.append(rel)
                else:
                    other.append((rel, "not an image file"))
        return sorted(images), sorted(other)

    def pool_split(self) -> ProjectSplit:
        """The pool: every indexed image (new files appended to the index first), read once per instance.

        Raises:
            DataError: The index file cannot be read or written, a new file cannot be decoded
                (``on_bad_image="error"``), or the pool is empty.
        """
        if self._pool is None:
            self._pool = self._open_pool()
        return self._pool

    def _open_pool(self) -> ProjectSplit:
        images, skipped = self._scan()
        try:
            self.index_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.index_file, "a+b") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                try:
                    files, bad = self._update_index(fh, images)
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        except OSError as e:
            raise DataError(f"cannot read or update the index file {self.index_file}: {e.strerror or e}") from e
        skipped = sorted(skipped + bad)
        present, sizes, mtimes = [], [], []
        for f in files:
            try:
                st = os.stat(self.root / f)
            except OSError:
                present.append(False)
                sizes.append(0)
                mtimes.append(0)
                continue
            present.append(True)
            sizes.append(st.st_size)
            mtimes.append(st.st_mtime_ns)
        if skipped:
            shown = ", ".join(f"{p} ({why})" for p, why in skipped[:5])
            more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
            warnings.warn(f"{self.root}: skipped {len(skipped)} file(s) that are not readable images: {shown}{more}",
                          stacklevel=3)  # fmt: skip
        missing = [f for f, p in zip(files, present, strict=True) if not p]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            warnings.warn(f"{self.root}: {len(missing)} indexed image file(s) are missing (their indices are kept, "
                          f"they are not served): {shown}", stacklevel=3)  # fmt: skip
        if not any(present):
            raise DataError(f"image folder {self.root} holds no readable image files ({', '.join(IMAGE_SUFFIXES)})")
        return ProjectSplit(
            name=f"{self.root.name}-pool",
            root=self.root,
            files=files,
            present=present,
            sizes=sizes,
            mtimes=mtimes,
            mode=self.mode,
            image_size=self.image_size,
            skipped=skipped,
            fingerprint={"dataset": "image_project", "split": "pool", "root": str(self.root)},
        )

    def _update_index(self, fh: Any, images: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
        """Read the index (under the lock), append the new decodable files; returns (files, bad)."""
        fh.seek(0)
        raw = fh.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{self.index_file} is not a UTF-8 lbench image index: {e}") from e
        complete = text if text.endswith("\n") or not text else text[: text.rfind("\n") + 1]
        lines = complete.splitlines()
        if lines and lines[0] != INDEX_HEADER:
            raise DataError(f"{self.index_file} is not an lbench image index (first line {lines[0][:60]!r})")
        files = lines[1:]
        known = set(files)
        new, bad = [], []
        for rel in images:
            if rel in known:
                continue
            st = os.stat(self.root / rel)
            if _decodes(str(self.root / rel), st.st_size, st.st_mtime_ns, self.mode):
                new.append(rel)
            elif self.on_bad_image == "error":
                raise DataError(f"cannot decode image file {self.root / rel}; fix or remove it, or on_bad_image: skip")
            else:
                bad.append((rel, "cannot be decoded"))
        if new or not lines:
            if len(complete) != len(text):  # a torn last line (a crash mid-append): drop it
                fh.truncate(len(complete.encode("utf-8")))
            fh.seek(0, os.SEEK_END)
            fh.write("".join(f"{p}\n" for p in ([INDEX_HEADER] if not lines else []) + new).encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        return files + new, bad

    def missing(self) -> list[str]:
        """Relative paths of indexed files that no longer exist (they keep their index)."""
        split = self.pool_split()
        return [split.files[i] for i in split.missing]

    def initial_labels(self) -> dict[int, int]:
        """``{pool index: class}`` of the images in a top-level class sub-folder (present files only)."""
        split = self.pool_split()
        index = {c: k for k, c in enumerate(self.class_names)}
        out = {}
        for i, (f, p) in enumerate(zip(split.files, split.present.tolist(), strict=True)):
            head, sep, _ = f.partition("/")
            if p and sep and head in index:
                out[i] = index[head]
        return out

    # -- the test split ---------------------------------------------------------------------
    def test_split(self) -> FileSplit:
        """The labeled test split ``<test_dir>/<class>/<image files>``.

        Raises:
            DataError: There is no test folder (``test_dir`` is None or missing), it holds an image
                outside a class folder or a folder that is not a class, or no images.
        """
        folder = self._test_folder()
        if folder is None:
            raise DataError(
                f"image project {self.root} has no test split: put labeled test images in <folder>/test/<class>/ and "
                "set test_dir: test (data.init_args.dataset.init_args.test_dir); without one, estimate accuracy on "
                "the labeled set (select --train true prints a cross-validated estimate)"
            )
        if not folder.is_dir():
            raise DataError(f"test folder {folder} does not exist (expected {folder}/<class>/<image files>)")
        index = {c: k for k, c in enumerate(self.class_names)}
        files, labels = [], []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in sorted(filenames):
                if f.startswith(".") or Path(f).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                rel = (Path(dirpath) / f).relative_to(folder)
                if len(rel.parts) < 2:
                    raise DataError(f"test image {folder / rel} is not in a class folder ({folder}/<class>/...)")
                if rel.parts[0] not in index:
                    known = ", ".join(self.class_names)
                    raise DataError(f"test folder {folder / rel.parts[0]} is not a class ({known})")
                files.append(str(folder / rel))
                labels.append(index[rel.parts[0]])
        if not files:
            raise DataError(f"test folder {folder} holds no image files")
        order = sorted(range(len(files)), key=files.__getitem__)
        return FileSplit(
            name=f"{self.root.name}-test",
            files=[os.path.relpath(files[k], self.root) for k in order],
            targets=[labels[k] for k in order],
            root=self.root,
            fingerprint={"dataset": "image_project", "split": "test", "root": str(self.root)},
            mode=self.mode,
            image_size=self.image_size,
            on_bad_image=self.on_bad_image,
        )


@cache
def _decodes(path: str, size: int, mtime_ns: int, mode: str) -> bool:
    """Whether PIL decodes the file (memoised per path, size and modification time)."""
    try:
        load_image_file(path, mode)
    except DataError:
        return False
    return True
