"""Resolve and validate the answers of a label file against the pool, changing nothing.

:func:`plan_import` turns the :class:`~lbench.label.formats.Row` objects of a file into the
changes to make (pool index -> class index, ``skip`` or ``unsure``), or raises one
:class:`~lbench.label.formats.LabelFileError` naming the file and the first bad line (and how
many more there are). Items named by ``id``/``path`` are mapped to pool indices with the
``index`` and ``id`` (or ``path``) columns of the CSV files ``select`` wrote next to the pool
file (``selected.csv``, ``batch_*.csv``) and of ``--ids_from`` files, so the data set itself is
never opened.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from lbench.errors import ConfigError
from lbench.label.formats import LabelFileError, Parsed, Row
from lbench.pool import ANSWERS, LabelPool

__all__ = ["IdMap", "Plan", "check_class_names", "load_id_map", "plan_import"]


# -- item ids --------------------------------------------------------------------------------
@dataclass
class IdMap:
    """Item id (or path) -> pool indices, read from CSV files with ``index`` and ``id``/``path`` columns."""

    ids: dict[str, set[int]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    def add(self, item_id: str, index: int) -> None:
        """Record that ``item_id`` is pool item ``index``."""
        self.ids.setdefault(item_id, set()).add(index)

    def resolve(self, value: str) -> tuple[int | None, str]:
        """The pool index of ``value`` (an id, a path, or a Label Studio URL), or None and why not.

        Tries the value as is, then the file a Label Studio URL points to (``/data/local-files/?d=PATH``,
        ``/data/upload/1/abc123-NAME``), then a unique id the value ends with (or that ends with it).
        """
        forms = _forms(value)
        for form in forms:
            if form in self.ids:
                return self._one(value, self.ids[form])
        hits: set[int] = set()
        for item_id, index in self.ids.items():
            if any(_path_suffix(form, item_id) or _path_suffix(item_id, form) for form in forms):
                hits |= index
        if hits:
            return self._one(value, hits)
        where = ", ".join(self.sources) if self.sources else "no selected.csv next to the pool file"
        hint = "add a CSV with index and id columns with --ids_from"
        return None, f"unknown id {value!r} (ids known from: {where}; {hint})"

    @staticmethod
    def _one(value: str, index: set[int]) -> tuple[int | None, str]:
        if len(index) == 1:
            return next(iter(index)), ""
        return None, f"id {value!r} matches several pool items {sorted(index)[:5]}; name the item by its index"


def _forms(value: str) -> list[str]:
    forms = [value]
    parts = urlsplit(value)
    query = parse_qs(parts.query)
    if "d" in query:  # Label Studio local files: /data/local-files/?d=relative/path.jpg
        forms.append(query["d"][0])
    path = unquote(parts.path)
    if parts.path and path != value:
        forms.append(path)
    if path.startswith("/data/upload/"):  # Label Studio uploads: /data/upload/<project>/<8 hex>-<name>
        name = path.rsplit("/", 1)[-1]
        if len(name) > 9 and name[8] == "-":
            forms.append(name[9:])
    return [f.removeprefix("./") for f in dict.fromkeys(forms) if f]


def _path_suffix(long: str, short: str) -> bool:
    return len(long) > len(short) and long.endswith(short) and long[-len(short) - 1] in "/\\"


def load_id_map(pool_dir: Path, extra: Sequence[str | Path] = (), exclude: Path | None = None) -> IdMap:
    """Read the id -> index maps of ``selected.csv``/``batch_*.csv`` in ``pool_dir`` and of ``extra`` files.

    Files in ``pool_dir`` without ``index`` and ``id``/``path`` columns are ignored; an ``extra`` file
    must have them (else :class:`ConfigError`). ``exclude`` (the label file itself) is never read.
    """
    id_map = IdMap()
    skip = exclude.resolve() if exclude is not None else None
    candidates = sorted(set(pool_dir.glob("selected*.csv")) | set(pool_dir.glob("batch_*.csv")))
    for path in candidates:
        if path.resolve() != skip:
            _read_ids(path, id_map, required=False)
    for path in extra:
        _read_ids(Path(path), id_map, required=True)
    return id_map


def _read_ids(path: Path, id_map: IdMap, required: bool) -> None:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        if required:
            raise ConfigError(f"--ids_from {path}: cannot read it ({e})") from e
        return
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [c.strip().lower() for c in next(reader, [])]
    key = "id" if "id" in header else "path" if "path" in header else None
    if "index" not in header or key is None:
        if required:
            raise ConfigError(f"--ids_from {path}: needs 'index' and 'id' (or 'path') columns, has {header}")
        return
    ki, kv = header.index("index"), header.index(key)
    try:
        for cells in reader:
            if len(cells) > max(ki, kv) and cells[kv].strip():
                try:
                    id_map.add(cells[kv].strip(), int(cells[ki]))
                except ValueError:
                    continue
    except csv.Error:
        pass
    id_map.sources.append(str(path))


# -- classes ---------------------------------------------------------------------------------
def check_class_names(names: Sequence[str]) -> list[str]:
    """Strip, and refuse empty, repeated or reserved (``skip``, ``unsure``) class names (ConfigError)."""
    names = [n.strip() for n in names]
    if not names or any(not n for n in names):
        raise ConfigError(f"--classes needs non-empty class names separated by commas, got {','.join(names)!r}")
    if len(set(names)) != len(names):
        raise ConfigError(f"--classes repeats a class name: {','.join(names)}")
    reserved = [n for n in names if n.lower() in ANSWERS]
    if reserved:
        raise ConfigError(f"{reserved[0]!r} cannot be a class name: {' and '.join(ANSWERS)} are answers, not classes")
    return names


def _class_list(pool: LabelPool, given: Sequence[str] | None, allow_new: bool) -> list[str] | None:
    known = pool.class_names
    if given is None:
        return None if known is None else list(known)
    given = check_class_names(given)
    k = pool.num_classes
    if known is None:
        if len(given) < k or (len(given) > k and not allow_new):
            raise ConfigError(
                f"--classes names {len(given)} classes, but the pool has {k}"
                + ("" if len(given) < k else "; add --allow_new_classes to add classes")
            )
        return given
    if given == known or (allow_new and given[: len(known)] == known):
        return given
    raise ConfigError(
        f"--classes {','.join(given)} differs from the pool's classes {','.join(known)}; drop --classes"
        + (" (with --allow_new_classes, new classes may only be appended)" if allow_new else "")
    )


# -- the plan --------------------------------------------------------------------------------
@dataclass
class Plan:
    """What an import changes.

    Attributes:
        rows: The changes, ``(pool index, class index | "skip" | "unsure")``, in file order.
        classes: The full class list when it changes (first naming, or new classes), else None.
        same: Answers the pool already holds (no change).
        outside: Answered items that were not pending (not in the open batch).
        unanswered: Rows of the file without an answer.
        new_classes: Class names added by this file (``--allow_new_classes``).
    """

    rows: list[tuple[int, int | str]] = field(default_factory=list)
    classes: list[str] | None = None
    same: int = 0
    outside: list[int] = field(default_factory=list)
    unanswered: int = 0
    new_classes: list[str] = field(default_factory=list)

    def count(self, answer: str) -> int:
        """Number of changes that are ``answer`` (``skip``/``unsure``), or class labels for ``label``."""
        if answer == "label":
            return sum(isinstance(y, int) for _, y in self.rows)
        return sum(y == answer for _, y in self.rows)


def plan_import(
    pool: LabelPool,
    parsed: Parsed,
    id_map: Callable[[], IdMap],
    classes: Sequence[str] | None = None,
    allow_new_classes: bool = False,
) -> Plan:
    """Validate ``parsed`` against ``pool`` (unchanged) and return the changes to make.

    Args:
        pool: The current pool (after replaying the journal).
        parsed: The answers read from a file.
        id_map: Called once, when a row names its item by id or path.
        classes: Class names given on the command line (``--classes``), if any.
        allow_new_classes: Names not in the class list become new classes (appended).

    Raises:
        ConfigError: ``--classes`` contradicts the pool.
        LabelFileError: The first bad row (unknown item or class, repeated or conflicting rows,
            an item already labeled otherwise), with the count of further problems.
    """
    names = _class_list(pool, classes, allow_new_classes)
    if allow_new_classes and names is None:
        raise ConfigError("--allow_new_classes needs class names: give them with --classes a,b,c")
    plan = Plan(unanswered=parsed.unanswered)
    errors: list[str] = []
    seen: dict[int, tuple[str, int | str, str]] = {}  # index -> (where, answer, as written)
    ids: IdMap | None = None
    pending = set(pool.pending)
    for row in parsed.rows:
        if row.key == "index":
            index = int(row.value)
            if not 0 <= index < pool.size:
                errors.append(f"{row.where}: index {index} is not in the pool (0 .. {pool.size - 1})")
                continue
        else:
            ids = ids if ids is not None else id_map()
            found, why = ids.resolve(str(row.value))
            if found is None:
                errors.append(f"{row.where}: {why}")
                continue
            if not 0 <= found < pool.size:
                errors.append(f"{row.where}: id {row.value!r} maps to index {found}, not in the pool")
                continue
            index = found
        answer, why = _answer(row, pool, names, allow_new_classes)
        if answer is None:
            errors.append(f"{row.where}: {why}")
            continue
        if isinstance(answer, str) and answer not in ANSWERS:  # a new class name
            assert names is not None
            plan.new_classes.append(answer)
            names.append(answer)
            answer = len(names) - 1
        item = _item(index, row)
        if index in seen:
            where, before, written = seen[index]
            if before == answer:
                errors.append(f"{row.where}: {item} is repeated (also on {where})")
            else:
                why = f"conflicting answers for {item}: {row.label!r} here, {written!r} on {where}"
                errors.append(f"{row.where}: {why}")
            continue
        seen[index] = (row.where, answer, str(row.label))
        current = int(pool.labels[index])
        if current >= 0:
            if answer == current:
                plan.same += 1
            else:
                errors.append(
                    f"{row.where}: {item} is already labeled {_name(current, names)!r}; the file says {row.label!r}"
                )
            continue
        if pool.skipped.get(index) == answer:
            plan.same += 1
            continue
        if index not in pending and index not in pool.skipped:
            plan.outside.append(index)
        plan.rows.append((index, answer))
    if errors:
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise LabelFileError(f"{parsed.source} {errors[0]}{more}")
    if names is not None and names != pool.class_names:
        plan.classes = names
    return plan


def _item(index: int, row: Row) -> str:
    return f"item {index}" if row.key == "index" else f"item {index} ({row.value})"


def _name(label: int, names: list[str] | None) -> str | int:
    return names[label] if names is not None and label < len(names) else label


def _answer(row: Row, pool: LabelPool, names: list[str] | None, allow_new: bool) -> tuple[int | str | None, str]:
    """The class index (or ``skip``/``unsure``, or a new class name) of a row's label, or None and why."""
    label = row.label
    if isinstance(label, str):
        text = label.strip()
        if text.lower() in ANSWERS:
            return text.lower(), ""
        if names is not None:
            if text in names:
                return names.index(text), ""
            if allow_new:
                return text, ""
            return None, (
                f"label {text!r} is not a class (classes: {', '.join(names)}); "
                "add --allow_new_classes to add it as a new class"
            )
        try:
            value = int(text)
        except ValueError:
            return None, (
                f"label {text!r} is not a class index in 0 .. {pool.num_classes - 1} "
                "(the pool has no class names: give them with --classes a,b,c)"
            )
    else:
        value = int(label)
    limit = len(names) if names is not None else pool.num_classes
    if not 0 <= value < limit:
        return None, f"label {value} is not a class index in 0 .. {limit - 1}"
    return value, ""
