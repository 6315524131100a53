"""Find a project's pool file, image folder and index, and map pool indices to image files (read only).

``lbench annotate`` never opens the data set (that would scan the folder and append new files
to the index): it reads ``project.yaml`` (written by ``lbench init``) for the image folder, the
index file and the pool file, and the index file for the relative path of each pool index. An
image is served only by its pool index, and only if its path stays inside the image folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lbench.data.folder import IMAGE_SUFFIXES
from lbench.data.project import INDEX_HEADER
from lbench.errors import ConfigError, DataError

__all__ = ["PROJECT_FILE", "Project", "find_project", "read_index"]

#: The project config ``lbench init`` writes next to ``pool.json``.
PROJECT_FILE = "project.yaml"


def read_index(path: Path) -> list[str]:
    """The relative image paths of an index file, one per pool index (a torn last line is ignored).

    Raises:
        DataError: The file is missing, unreadable or not an lbench image index.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as e:
        raise DataError(f"index file {path} does not exist (run lbench select once, or lbench init again)") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read the index file {path}: {e}") from e
    complete = text[: text.rfind("\n") + 1]
    lines = complete.splitlines()
    if not lines or lines[0] != INDEX_HEADER:
        raise DataError(f"{path} is not an lbench image index")
    return lines[1:]


@dataclass
class Project:
    """A project made by ``lbench init``: where its pool file, images and index are.

    Attributes:
        pool_file: The ``pool.json``.
        root: The image folder (the only place images are served from).
        index_file: The index file (``index.txt``): line ``k`` is the relative path of pool item ``k``.
        config: The ``project.yaml``, if known (for messages).
    """

    pool_file: Path
    root: Path
    index_file: Path
    config: Path | None = None
    _files: list[str] = field(default_factory=list, repr=False)
    _stamp: tuple[int, int] | None = field(default=None, repr=False)

    @property
    def folder(self) -> Path:
        """The folder of the pool file (where ``select`` writes the batch files)."""
        return self.pool_file.parent

    def files(self) -> list[str]:
        """The relative image paths by pool index (the index file is read again when it changed)."""
        try:
            st = self.index_file.stat()
        except OSError:
            return read_index(self.index_file)  # a clear DataError
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._files, self._stamp = read_index(self.index_file), stamp
        return self._files

    def image_path(self, index: int) -> Path | None:
        """The image file of pool item ``index``, or None when there is none to serve.

        None for an index outside the index file, a recorded path that is absolute or climbs out
        (``..``), a file whose real path (symbolic links followed) is outside the image folder, a
        missing file, or a name that is not an image's.
        """
        try:
            files = self.files()
        except (OSError, DataError):
            return None
        if not 0 <= index < len(files):
            return None
        rel = Path(files[index])
        if rel.is_absolute() or ".." in rel.parts or rel.suffix.lower() not in IMAGE_SUFFIXES:
            return None
        root = self.root.resolve()
        try:
            real = (root / rel).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not real.is_relative_to(root) or not real.is_file():
            return None
        return real


def _get(config: dict[str, Any], *keys: str) -> Any:
    node: Any = config
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _from_config(config_file: Path, pool_file: Path | None) -> Project:
    try:
        config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read the project config {config_file}: {e}") from e
    data = _get(config, "data", "init_args") if isinstance(config, dict) else None
    dataset = _get(data or {}, "dataset")
    kind = str(_get(dataset or {}, "class_path") or "")
    args = _get(dataset or {}, "init_args")
    if kind.rpartition(".")[2] != "ImageProject" or not isinstance(args, dict) or not args.get("root"):
        raise ConfigError(
            f"{config_file} is not a project of an image folder (its data set is {kind or 'not given'}); annotate "
            "serves projects made by lbench init FOLDER"
        )
    root = Path(str(args["root"])).absolute()
    index_file = Path(str(args["index_file"])).absolute() if args.get("index_file") else root / ".lbench" / "index.txt"
    if pool_file is None:
        given = _get(data, "pool_file")
        if not given:
            raise ConfigError(f"{config_file} names no pool file (data.init_args.pool_file); give it with --pool")
        pool_file = Path(str(given))
    return Project(pool_file.absolute(), root, index_file, config_file.absolute())


def find_project(config: str | os.PathLike[str] | None, pool: str | os.PathLike[str] | None) -> Project:
    """The project of ``-c PROJECT_YAML`` and/or ``--pool POOL_JSON`` (then ``project.yaml`` next to it).

    Raises:
        ConfigError: Neither given, a missing file, a config that is not an image-folder project.
        DataError: The image folder or the index file is missing or unreadable.
    """
    pool_file = Path(pool) if pool is not None else None
    if config is None:
        if pool_file is None:
            raise ConfigError("give the project: -c PROJECT_DIR/project.yaml (written by lbench init)")
        config_file = pool_file.parent / PROJECT_FILE
        if not config_file.is_file():
            raise ConfigError(f"no {PROJECT_FILE} next to {pool_file}; give the project with -c PROJECT_YAML")
    else:
        config_file = Path(config)
        if not config_file.is_file():
            raise ConfigError(f"project config {config_file} does not exist (lbench init FOLDER writes one)")
    project = _from_config(config_file, pool_file)
    if not project.pool_file.is_file():
        raise ConfigError(f"pool file {project.pool_file} does not exist (lbench init FOLDER writes one)")
    if not project.root.is_dir():
        raise DataError(f"image folder {project.root} of {config_file} does not exist")
    project.files()  # readable now, or a clear error
    return project
