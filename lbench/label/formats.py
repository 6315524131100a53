"""Readers of the label files a person gives: CSV, JSON, and a Label Studio JSON export.

Each reader returns the answers as :class:`Row` objects that still name items as the file does
(a pool ``index``, or an ``id``/``path``) and carry the raw answer (a class name, a class index,
``skip`` or ``unsure``); :mod:`lbench.label.importer` resolves and validates them against the pool.
A file that cannot be read raises :class:`LabelFileError`: one line naming the file and the line
(CSV), item (JSON) or task (Label Studio) at fault.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lbench.errors import DataError

__all__ = ["FORMATS", "LabelFileError", "Parsed", "Row", "read_label_file"]

#: The formats :func:`read_label_file` knows (``auto`` picks one from the name and content).
FORMATS = ("auto", "csv", "json", "label-studio")

_KEYS = ("index", "id", "path")  # how a row names its item, in order of preference


class LabelFileError(DataError):
    """A label file is unreadable or inconsistent (the message names the file and the line/item)."""


@dataclass(frozen=True)
class Row:
    """One answer as the file gives it.

    Attributes:
        where: Where it is, for messages: ``line 3``, ``item 2``, ``task 5 (id 17)``.
        key: ``index`` (a pool index) or ``id`` (an item id or path, as ``selected.csv`` writes it).
        value: The index (int) or the id (str).
        label: The answer: a class name or index, ``skip`` or ``unsure``.
    """

    where: str
    key: str
    value: int | str
    label: int | str


@dataclass
class Parsed:
    """The answers of one label file (or of a program, e.g. a simulated oracle)."""

    source: str
    format: str
    rows: list[Row]
    unanswered: int = 0  # rows/tasks without an answer (empty label, no or cancelled annotation)
    sha256: str | None = None  # of the file's bytes

    @classmethod
    def from_answers(cls, index: Iterable[int], labels: Iterable[int | str], source: str = "program") -> Parsed:
        """Answers given by a program: ``labels[k]`` (a class index, ``skip`` or ``unsure``) for ``index[k]``."""
        rows = [
            Row(f"answer {k + 1}", "index", int(i), y if isinstance(y, str) else int(y))
            for k, (i, y) in enumerate(zip(index, labels, strict=True))
        ]
        return cls(source, "answers", rows)


def read_label_file(path: str | Path, format: str = "auto") -> Parsed:
    """Read a label file.

    Args:
        path: A CSV (header with ``label`` and ``index``, ``id`` or ``path``), a JSON list of
            ``{"index"|"id"|"path": ..., "label": ...}`` objects, or a Label Studio JSON export.
        format: One of :data:`FORMATS`; ``auto`` uses the suffix (``.csv``/``.tsv``, ``.json``)
            or else the first character, and tells a Label Studio export by its ``data`` objects.

    Raises:
        LabelFileError: Missing, empty or malformed file; no answers at all.
    """
    path = Path(path)
    if format not in FORMATS:
        raise LabelFileError(f"unknown label file format {format!r}; choose from {', '.join(FORMATS)}")
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise LabelFileError(f"label file {path} does not exist") from e
    except OSError as e:
        raise LabelFileError(f"cannot read label file {path}: {e.strerror or e}") from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise LabelFileError(f"{path} is not UTF-8 text (byte {e.start}); save it as UTF-8") from e
    if not text.strip():
        raise LabelFileError(f"{path} is empty")
    if format == "auto":
        suffix = path.suffix.lower()
        if suffix in (".csv", ".tsv"):
            format = "csv"
        elif suffix == ".json" or text.lstrip()[:1] in ("[", "{"):
            format = "json"
        else:
            format = "csv"
    parsed = _read_csv(path, text) if format == "csv" else _read_json(path, text, format)
    parsed.sha256 = hashlib.sha256(raw).hexdigest()
    if not parsed.rows:
        if parsed.unanswered:
            raise LabelFileError(f"{path} has no answers ({parsed.unanswered} rows without a label)")
        raise LabelFileError(f"{path} has no rows")
    return parsed


# -- CSV -------------------------------------------------------------------------------------
def _delimiter(path: Path, text: str) -> str:
    first = text.split("\n", 1)[0]
    if path.suffix.lower() == ".tsv" or ("," not in first and "\t" in first):
        return "\t"
    if "," not in first and ";" in first:
        return ";"
    return ","


def _read_csv(path: Path, text: str) -> Parsed:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(path, text), strict=True)
    rows: list[Row] = []
    unanswered = 0
    header: list[str] | None = None
    line = 1
    try:
        for cells in reader:
            where, line = f"line {line}", reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip().lower() for c in cells]
                _check_header(path, where, header)
                continue
            if len(cells) != len(header):
                raise LabelFileError(f"{path} {where}: {len(cells)} fields, but the header has {len(header)}")
            record = dict(zip(header, (c.strip() for c in cells), strict=True))
            key = next(k for k in _KEYS if k in record)
            label = record["label"]
            value: int | str = record[key]
            if key == "index":
                value = _int(path, where, "index", record[key])
            elif not value:
                raise LabelFileError(f"{path} {where}: empty {key}")
            if not label:
                unanswered += 1
                continue
            rows.append(Row(where, "index" if key == "index" else "id", value, label))
    except csv.Error as e:
        raise LabelFileError(f"{path} line {reader.line_num}: malformed CSV ({e})") from e
    if header is None:  # pragma: no cover - a text with only blank lines is "empty" above
        raise LabelFileError(f"{path} is empty")
    return Parsed(str(path), "csv", rows, unanswered)


def _check_header(path: Path, where: str, header: list[str]) -> None:
    shown = ",".join(header)
    if len(set(header)) != len(header):
        raise LabelFileError(f"{path} {where}: repeated column in the header {shown!r}")
    if "label" not in header or not any(k in header for k in _KEYS):
        raise LabelFileError(
            f"{path} {where}: the header must have a 'label' column and an 'index', 'path' or 'id' column, "
            f"got {shown!r}"
        )


def _int(path: Path, where: str, what: str, value: Any) -> int:
    if isinstance(value, bool):
        raise LabelFileError(f"{path} {where}: {what} {value!r} is not an integer")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise LabelFileError(f"{path} {where}: {what} {value!r} is not an integer") from None


# -- JSON ------------------------------------------------------------------------------------
def _read_json(path: Path, text: str, format: str) -> Parsed:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise LabelFileError(f"{path} line {e.lineno}: not valid JSON ({e.msg})") from e
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        data = [data]  # a single Label Studio task
    if not isinstance(data, list):
        raise LabelFileError(
            f'{path}: expected a JSON list of {{"index"|"path"|"id": ..., "label": ...}} objects or a '
            f"Label Studio export (a list of tasks), got a {type(data).__name__}"
        )
    if not data:
        raise LabelFileError(f"{path} is empty (an empty list)")
    is_ls = any(isinstance(t, dict) and isinstance(t.get("data"), dict) for t in data)
    if format == "label-studio" or is_ls:
        return _read_label_studio(path, data)
    return _read_json_list(path, data)


def _read_json_list(path: Path, data: list[Any]) -> Parsed:
    rows: list[Row] = []
    unanswered = 0
    for k, item in enumerate(data, start=1):
        where = f"item {k}"
        if not isinstance(item, dict):
            raise LabelFileError(f"{path} {where}: expected an object with a 'label', got {json.dumps(item)[:60]}")
        key = next((x for x in _KEYS if x in item), None)
        if key is None or "label" not in item:
            raise LabelFileError(f"{path} {where}: needs 'label' and one of 'index', 'path', 'id'; has {sorted(item)}")
        value = item[key]
        if key == "index":
            value = _int(path, where, "index", value)
        elif not isinstance(value, str) or not value.strip():
            raise LabelFileError(f"{path} {where}: {key} must be a non-empty string, got {value!r}")
        else:
            value = value.strip()
        label = item["label"]
        if label is None or (isinstance(label, str) and not label.strip()):
            unanswered += 1
            continue
        if isinstance(label, bool) or not isinstance(label, int | str):
            raise LabelFileError(f"{path} {where}: label must be a class name or index, got {label!r}")
        rows.append(Row(where, "index" if key == "index" else "id", value, label))
    return Parsed(str(path), "json", rows, unanswered)


def _read_label_studio(path: Path, tasks: list[Any]) -> Parsed:
    rows: list[Row] = []
    unanswered = 0
    for k, task in enumerate(tasks, start=1):
        where = f"task {k}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise LabelFileError(f"{path} {where}: not a Label Studio task (no 'data' object)")
        if "id" in task:
            where += f" (id {task['id']})"
        data = task["data"]
        if "index" in data:
            key, value = "index", _int(path, where, "data.index", data["index"])
        else:
            name = next((x for x in ("image", "path", "id") if x in data), None)
            if name is None or not isinstance(data[name], str) or not data[name].strip():
                raise LabelFileError(f"{path} {where}: data needs 'index' or 'image' (the item), has {sorted(data)}")
            key, value = "id", data[name].strip()
        annotations = task.get("annotations") or task.get("completions") or []
        if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
            raise LabelFileError(f"{path} {where}: 'annotations' must be a list of objects")
        done = [a for a in annotations if not a.get("was_cancelled", False)]
        choices = _choices(path, where, done[-1]) if done else []
        if not choices:
            unanswered += 1
            continue
        if len(choices) > 1:
            raise LabelFileError(f"{path} {where}: {len(choices)} choices {choices}, expected one class")
        rows.append(Row(where, key, value, choices[0]))
    return Parsed(str(path), "label-studio", rows, unanswered)


def _choices(path: Path, where: str, annotation: dict[str, Any]) -> list[str]:
    result = annotation.get("result") or []
    if not isinstance(result, list):
        raise LabelFileError(f"{path} {where}: annotation 'result' must be a list")
    for region in result:
        value = region.get("value") if isinstance(region, dict) else None
        if isinstance(value, dict) and "choices" in value:
            choices = value["choices"]
            if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
                raise LabelFileError(f"{path} {where}: value.choices must be a list of strings, got {choices!r}")
            return [c.strip() for c in choices]
    return []
