"""Reading and validating results ledgers (``<run_dir>/rounds.jsonl``) and merging runs.

One JSON object per line, one line per finished round of one (arm, seed): a
:class:`~lbench.records.RoundRecord` (its module documents the keys; the driver writes the same
type). A problem raises :class:`~lbench.errors.ReportError` naming the file and line.

A run is *partial* when some round r <= R of an expected (arm, seed) has no line. Expected
(arm, seed) pairs are those in the file, plus the arms and seeds of ``run.json`` when the run
directory has one (an arm not started yet is then reported as missing too).

A run directory may also hold ``point_eval.jsonl``: one line per (arm, seed) whose final labeled set
was fine-tuned end to end (see :class:`PointRecord`). It is optional; when present it is validated
the same way and a duplicate (arm, seed) is an error.

Merged runs must agree on what each arm name is: rows of one arm name with different ``run_id``
(another config, budget, data or encoder) are refused, unless ``allow_mixed``; then each such arm
is relabelled ``<arm> [<first 8 hex of run_id>]`` (``[no id]`` for rows without one), so every
table and plot shows which run it comes from. Rows without ``run_id`` (older runs) merge as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lbench.errors import ReportError
from lbench.records import METRICS, PHASES, RoundRecord, fractions, is_int, run_id_of, seconds_of

__all__ = [
    "METRICS",
    "PHASES",
    "POINT_EVAL_FILE",
    "Ledger",
    "PointRecord",
    "RoundRecord",
    "load_ledger",
    "read_json_lines",
    "read_ledger_file",
    "read_point_eval_file",
]

POINT_EVAL_FILE = "point_eval.jsonl"
"""The point-evaluation ledger of a run directory (optional)."""


@dataclass(frozen=True)
class PointRecord:
    """One validated line of ``point_eval.jsonl``: an arm's final labeled set, fine-tuned end to end.

    Attributes:
        arm: Name of the query strategy.
        seed: Seed of the (arm, seed) sequence.
        num_labeled: Labels the fine-tuned model was trained on (the arm's final labeled set).
        model: ``repr`` of the fine-tuned model's configuration ("" when not recorded).
        ssl: Semi-supervised method of the fine-tuning (e.g. ``FlexMatch``), or None.
        metrics: ``test_acc`` and ``proxy_test_acc`` always; ``test_balanced_acc``,
            ``test_macro_f1``, ``test_min_class_acc``, ``pool_acc`` and ``proxy_pool_acc`` where
            present and not null (fractions in [0, 1]). ``proxy_*`` are the proxy's (the round
            model on cached embeddings) at the same labels.
        seconds: ``train_seconds`` and ``test_seconds`` (0 when absent).
        source: ``file:line`` the record came from.
        run_id: The run's identity, or None (old ledgers).
    """

    arm: str
    seed: int
    num_labeled: int
    model: str
    ssl: str | None
    metrics: dict[str, float]
    seconds: dict[str, float]
    source: str
    run_id: str | None = None


POINT_METRICS = (
    "test_acc",
    "proxy_test_acc",
    "pool_acc",
    "proxy_pool_acc",
    "test_balanced_acc",
    "test_macro_f1",
    "test_min_class_acc",
)
"""Fractions of a point-evaluation line (the first two required; the others may be absent or null)."""


@dataclass
class Ledger:
    """The merged records of one or more runs.

    Attributes:
        records: Validated records, in reading order.
        sources: The ledger files read.
        missing: ``(arm, seed, round)`` expected but not finished (sorted).
        metrics: The optional metrics present in every record, with ``test_acc`` first.
        points: The point-evaluation records of the runs (``point_eval.jsonl``; empty without).
        mixed: Relabelled arm -> where it comes from (``run <run_id> in <run dir>``), when runs of
            different identities were merged with ``allow_mixed`` (empty otherwise).
    """

    records: list[RoundRecord]
    sources: list[Path]
    missing: list[tuple[str, int, int]] = field(default_factory=list)
    metrics: tuple[str, ...] = ("test_acc",)
    points: list[PointRecord] = field(default_factory=list)
    mixed: dict[str, str] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        """Whether some expected round is not finished yet."""
        return bool(self.missing)

    @property
    def arms(self) -> list[str]:
        """Arm names in order of first appearance."""
        return list(dict.fromkeys(r.arm for r in self.records))


def read_json_lines(path: Path) -> list[tuple[str, Any]]:
    """Read a JSON-lines file: ``(file:line, object)`` per non-blank line.

    Raises:
        ReportError: The file is unreadable or a line is not valid JSON (naming file and line).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"cannot read {path}: {e}") from e
    rows: list[tuple[str, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            rows.append((where, json.loads(line)))
        except json.JSONDecodeError as e:
            raise ReportError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from e
    return rows


def read_ledger_file(path: Path) -> list[RoundRecord]:
    """Read and validate one ``rounds.jsonl`` (blank lines are skipped).

    Args:
        path: The ledger file.

    Returns:
        Its records, in file order.

    Raises:
        ReportError: The file is unreadable, a line is not a JSON object with the required keys
            and types, an (arm, seed, round) appears twice, ``rounds_total`` changes within an
            (arm, seed), or ``num_labeled`` does not grow with the round.
    """
    records = [RoundRecord.from_json(obj, where) for where, obj in read_json_lines(path)]
    _check_consistency(records)
    return records


def _check_consistency(records: list[RoundRecord]) -> None:
    seen: dict[tuple[str, int, int], RoundRecord] = {}
    by_pair: dict[tuple[str, int], list[RoundRecord]] = {}
    for r in records:
        key = (r.arm, r.seed, r.round)
        if key in seen:
            raise ReportError(
                f"{r.source}: arm {r.arm!r} seed {r.seed} round {r.round} already recorded at {seen[key].source}; "
                "pass each run directory once and give merged runs distinct seeds"
            )
        seen[key] = r
        by_pair.setdefault((r.arm, r.seed), []).append(r)
    for rs in by_pair.values():
        rs.sort(key=lambda r: r.round)
        for a, b in zip(rs, rs[1:], strict=False):
            if b.rounds_total != a.rounds_total:
                raise ReportError(
                    f"{b.source}: rounds_total {b.rounds_total} differs from {a.rounds_total} at {a.source} "
                    f"for arm {b.arm!r} seed {b.seed}"
                )
            if b.num_labeled <= a.num_labeled:
                raise ReportError(
                    f"{b.source}: num_labeled {b.num_labeled} at round {b.round} does not exceed "
                    f"{a.num_labeled} at round {a.round} ({a.source})"
                )


def _parse_point(obj: Any, where: str) -> PointRecord:
    """Validate one decoded line of ``point_eval.jsonl``."""
    if not isinstance(obj, dict):
        raise ReportError(f"{where}: expected a JSON object (one arm and seed per line), got {type(obj).__name__}")
    missing = [k for k in ("arm", "seed", "num_labeled", "test_acc", "proxy_test_acc") if k not in obj]
    if missing:
        raise ReportError(f"{where}: missing required key(s) {', '.join(missing)}; is this a lbench point_eval.jsonl?")
    if not isinstance(obj["arm"], str) or not obj["arm"]:
        raise ReportError(f"{where}: 'arm' must be a non-empty string, got {obj['arm']!r}")
    for key, low in (("seed", None), ("num_labeled", 1)):
        v = obj[key]
        if not is_int(v) or (low is not None and v < low):
            raise ReportError(f"{where}: '{key}' must be an integer{'' if low is None else f' >= {low}'}, got {v!r}")
    for key in ("model", "ssl"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise ReportError(f"{where}: '{key}' must be a string or null, got {obj[key]!r}")
    optional = POINT_METRICS[2:]
    return PointRecord(
        arm=obj["arm"],
        seed=obj["seed"],
        num_labeled=obj["num_labeled"],
        model=obj.get("model") or "",
        ssl=obj.get("ssl"),
        metrics=fractions(obj, POINT_METRICS, optional, optional, where),
        seconds=seconds_of(obj, ("train_seconds", "test_seconds"), where),
        source=where,
        run_id=run_id_of(obj, where),
    )


def read_point_eval_file(path: Path) -> list[PointRecord]:
    """Read and validate one ``point_eval.jsonl`` (blank lines are skipped; a missing file has no records).

    Args:
        path: The point-evaluation ledger.

    Returns:
        Its records, in file order (empty when the file does not exist).

    Raises:
        ReportError: The file is unreadable, a line is not a JSON object with the required keys
            and types, or an (arm, seed) appears twice (naming file and line).
    """
    if not path.exists():
        return []
    records = [_parse_point(obj, where) for where, obj in read_json_lines(path)]
    _check_point_duplicates(records)
    return records


def _check_point_duplicates(records: list[PointRecord]) -> None:
    seen: dict[tuple[str, int], PointRecord] = {}
    for r in records:
        if (r.arm, r.seed) in seen:
            raise ReportError(
                f"{r.source}: point evaluation of arm {r.arm!r} seed {r.seed} already recorded at "
                f"{seen[(r.arm, r.seed)].source}; keep one line per arm and seed"
            )
        seen[(r.arm, r.seed)] = r


def _ledger_path(run: Path) -> Path:
    if run.is_file():
        return run
    path = run / "rounds.jsonl"
    if not path.exists():
        if not run.exists():
            raise ReportError(f"{run} does not exist; give a run directory (the out_dir of `lbench run`)")
        raise ReportError(f"{run} has no rounds.jsonl; is it a run directory (the out_dir of `lbench run`)?")
    return path


def _expected_pairs(path: Path, records: list[RoundRecord]) -> dict[tuple[str, int], int]:
    """(arm, seed) -> last expected round, from the records and the run's ``run.json`` if readable."""
    expected = {(r.arm, r.seed): r.rounds_total for r in records}
    try:
        settings = json.loads((path.parent / "run.json").read_text(encoding="utf-8"))["settings"]
        arms, seeds, rounds = list(settings["arms"]), list(settings["seeds"]), int(settings["rounds"])
    except (OSError, ValueError, KeyError, TypeError):
        return expected  # run.json is an optional hint; the ledger itself is the record
    for arm in arms:
        for seed in seeds:
            if isinstance(arm, str) and is_int(seed):
                expected.setdefault((arm, seed), rounds)
    return expected


def _label(arm: str, run_id: str | None) -> str:
    return f"{arm} [{run_id[:8] if run_id else 'no id'}]"


def _arm_labels(
    rows: list[tuple[str, str | None, str]], allow_mixed: bool
) -> tuple[dict[tuple[str, str | None], str], dict[str, str]]:
    """Labels of ``(arm, run_id)`` and where each relabelled arm comes from.

    Args:
        rows: ``(arm, run_id, source)`` of every round and point record.
        allow_mixed: Relabel an arm with rows of several run ids instead of refusing it.

    Raises:
        ReportError: An arm has rows of two run ids and ``allow_mixed`` is False.
    """
    ids: dict[str, dict[str, str]] = {}  # arm -> run_id -> first source
    for arm, run_id, source in rows:
        if run_id is not None:
            ids.setdefault(arm, {}).setdefault(run_id, source)
    mixed = {arm: by_id for arm, by_id in ids.items() if len(by_id) > 1}
    if mixed and not allow_mixed:
        arm, by_id = next(iter(mixed.items()))
        (a, src_a), (b, src_b) = list(by_id.items())[:2]
        raise ReportError(
            f"arm {arm!r} has rows of two different runs: run {a} ({_run_dir(src_a)}) and run {b} "
            f"({_run_dir(src_b)}), whose config, budgets, data or encoder differ; report them separately, or pass "
            "--allow_mixed to compare them (each such arm is labelled with its run)"
        )
    labels: dict[tuple[str, str | None], str] = {}
    where: dict[str, str] = {}
    for arm, run_id, source in rows:
        if arm in mixed and (arm, run_id) not in labels:
            labels[(arm, run_id)] = label = _label(arm, run_id)
            where.setdefault(label, f"run {run_id or '(no id)'} in {_run_dir(source)}")
    return labels, where


def _run_dir(source: str) -> str:
    """The run directory of a record's ``file:line``."""
    return str(Path(source.rsplit(":", 1)[0]).parent)


def _recorded_id(path: Path) -> str | None:
    """The ``identity`` in the run's ``run.json``, or None."""
    try:
        ident = json.loads((path.parent / "run.json").read_text(encoding="utf-8")).get("identity")
    except (OSError, ValueError, AttributeError):
        return None
    return ident if isinstance(ident, str) and ident else None


def load_ledger(run_dirs: list[str | Path], allow_mixed: bool = False) -> Ledger:
    """Read, validate and merge the ledgers of one or more runs.

    Args:
        run_dirs: Run directories (or ``rounds.jsonl`` files). The same directory given twice is
            read once; different runs are merged and must not both hold an (arm, seed, round).
        allow_mixed: Merge rows of one arm name from runs of different identities (``run_id``),
            each labelled ``<arm> [<run_id[:8]>]``, instead of refusing them.

    Returns:
        The merged ledger, with the missing rounds of every expected (arm, seed) and the point
        evaluations of the runs that have a ``point_eval.jsonl`` beside their ``rounds.jsonl``.

    Raises:
        ReportError: No run given, a ledger is missing, unreadable, malformed or empty, two runs
            record the same (arm, seed, round) (or point-evaluate the same (arm, seed)), or rows of
            one arm name come from runs of different identities (without ``allow_mixed``).
    """
    if not run_dirs:
        raise ReportError("give at least one run directory")
    paths = list(dict.fromkeys(_ledger_path(Path(d)).resolve() for d in run_dirs))
    per_path: list[tuple[Path, list[RoundRecord]]] = []
    points: list[PointRecord] = []
    for path in paths:
        recs = read_ledger_file(path)
        points.extend(read_point_eval_file(path.parent / POINT_EVAL_FILE))
        if not recs:
            raise ReportError(f"{path} has no finished rounds yet; report again once the first round is done")
        per_path.append((path, recs))
    rows = [(r.arm, r.run_id, r.source) for _, recs in per_path for r in recs]
    labels, mixed = _arm_labels(rows + [(p.arm, p.run_id, p.source) for p in points], allow_mixed)
    records: list[RoundRecord] = []
    missing: set[tuple[str, int, int]] = set()
    for path, recs in per_path:
        recs = [replace(r, arm=labels.get((r.arm, r.run_id), r.arm)) for r in recs]
        records.extend(recs)
        done = {(r.arm, r.seed, r.round) for r in recs}
        run_id = _recorded_id(path) or next((r.run_id for r in recs if r.run_id), None)
        for (arm, seed), last in _expected_pairs(path, recs).items():
            arm = labels.get((arm, run_id), arm) if arm not in {r.arm for r in recs} else arm
            missing.update((arm, seed, k) for k in range(last + 1) if (arm, seed, k) not in done)
    points = [replace(p, arm=labels.get((p.arm, p.run_id), p.arm)) for p in points]
    _check_consistency(records)
    _check_point_duplicates(points)
    missing -= {(r.arm, r.seed, r.round) for r in records}  # another run may hold them
    metrics = tuple(m for m in METRICS if all(m in r.metrics for r in records))
    return Ledger(records=records, sources=paths, missing=sorted(missing), metrics=metrics, points=points, mixed=mixed)
