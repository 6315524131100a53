"""What a report describes: data set, encoder, budgets, seeds, run dirs and the shared embedding cost.

Each run directory may hold a ``run.json`` with an optional ``"description"`` object::

    {"dataset": str, "encoder": str, "class_names": [str, ...] or null, "budget": int,
     "initial_budget": int, "seeds": [int], "rounds": int, "pool_size": int, "embed_seconds": float}

Every key is optional and a key of the wrong type is ignored; a run without ``run.json`` or
without a description falls back to what its ledger says (labels at round 0, labels added per
round, ``rounds_total``, the sum of its records' ``embed_seconds``). Merged runs list their
distinct values. Nothing here raises: the ledger is the record, the description a hint.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lbench.report.ledger import Ledger, RoundRecord

__all__ = ["RunInfo", "read_description", "run_info"]


@dataclass(frozen=True)
class RunInfo:
    """The merged description of the runs of a report (distinct values, in order of appearance).

    Attributes:
        run_dirs: The run directories.
        datasets: Data set names (empty when no run says).
        encoders: Encoder names (empty when no run says).
        class_names: Class names, when the runs that give them agree (None otherwise).
        initial_budgets: Labels of the initial set (round 0).
        budgets: Labels acquired per round.
        rounds: Last round index of the runs.
        pool_sizes: Items in the unlabeled pool.
        embed_seconds: Embedding time shared by all arms, summed over runs: the description's
            ``embed_seconds`` where given, otherwise the sum of the run's records' ``embed_seconds``.
        embed_from_ledger: Run dirs whose embedding time came from the ledger records.
    """

    run_dirs: tuple[Path, ...] = ()
    datasets: tuple[str, ...] = ()
    encoders: tuple[str, ...] = ()
    class_names: tuple[str, ...] | None = None
    initial_budgets: tuple[int, ...] = ()
    budgets: tuple[int, ...] = ()
    rounds: tuple[int, ...] = ()
    pool_sizes: tuple[int, ...] = ()
    embed_seconds: float = 0.0
    embed_from_ledger: tuple[Path, ...] = ()

    def title(self) -> str:
        """``data set · encoder`` for figure titles ("" when neither is known)."""
        return " · ".join(p for p in (", ".join(self.datasets), ", ".join(self.encoders)) if p)


def read_description(run_dir: Path) -> dict[str, Any]:
    """The ``description`` of ``<run_dir>/run.json`` (an empty dict when absent or unreadable)."""
    try:
        desc = json.loads((run_dir / "run.json").read_text(encoding="utf-8")).get("description")
    except (OSError, ValueError, AttributeError):
        return {}
    return desc if isinstance(desc, dict) else {}


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _seconds(v: Any) -> float | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
    return float(v) if ok else None


def _names(v: Any) -> tuple[str, ...] | None:
    return tuple(v) if isinstance(v, list) and v and all(isinstance(n, str) for n in v) else None


def _ledger_budgets(recs: list[RoundRecord]) -> tuple[set[int], set[int], set[int]]:
    """Initial budgets, labels per round and last round indices seen in ``recs``."""
    by_pair: dict[tuple[str, int], dict[int, int]] = {}
    for r in recs:
        by_pair.setdefault((r.arm, r.seed), {})[r.round] = r.num_labeled
    initial = {xs[0] for xs in by_pair.values() if 0 in xs}
    steps = {xs[k + 1] - xs[k] for xs in by_pair.values() for k in xs if k + 1 in xs}
    return initial, steps, {r.rounds_total for r in recs}


def _distinct(values: list[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(v for v in values if v is not None))


def run_info(ledger: Ledger) -> RunInfo:
    """Read the description of every run of ``ledger`` and merge them.

    Args:
        ledger: The merged ledger (``sources`` are the ``rounds.jsonl`` files; records are matched
            to their file by ``source``).

    Returns:
        The merged description; fields no run gives are empty.
    """
    by_file: dict[str, list[RoundRecord]] = {}
    for r in ledger.records:
        by_file.setdefault(r.source.rsplit(":", 1)[0], []).append(r)
    files = [str(p) for p in ledger.sources] or list(by_file)
    if not any(f in by_file for f in files):  # records not read from these files: one group
        by_file = {files[0] if files else "": list(ledger.records)}
    datasets, encoders, names, initial, budgets, rounds, pools = [], [], [], [], [], [], []
    embed, from_ledger = 0.0, []
    for f in files:
        run_dir, recs = Path(f).parent, by_file.get(f, [])
        desc = read_description(run_dir) if f else {}
        datasets.append(desc.get("dataset") if isinstance(desc.get("dataset"), str) else None)
        encoders.append(desc.get("encoder") if isinstance(desc.get("encoder"), str) else None)
        names.append(_names(desc.get("class_names")))
        pools.append(_int(desc.get("pool_size")))
        led_initial, led_steps, led_rounds = _ledger_budgets(recs)
        d_init, d_budget, d_rounds = (_int(desc.get(k)) for k in ("initial_budget", "budget", "rounds"))
        initial += [d_init] if d_init is not None else sorted(led_initial)
        budgets += [d_budget] if d_budget is not None else sorted(led_steps)
        rounds += [d_rounds] if d_rounds is not None else sorted(led_rounds)
        seconds = _seconds(desc.get("embed_seconds"))
        if seconds is None:
            seconds = sum(r.seconds["embed_seconds"] for r in recs)
            from_ledger.append(run_dir)
        embed += seconds
    known_names = _distinct(names)
    return RunInfo(
        run_dirs=tuple(Path(f).parent for f in files if f),
        datasets=_distinct(datasets),
        encoders=_distinct(encoders),
        class_names=known_names[0] if len(known_names) == 1 else None,
        initial_budgets=_distinct(initial),
        budgets=_distinct(budgets),
        rounds=_distinct(rounds),
        pool_sizes=_distinct(pools),
        embed_seconds=embed,
        embed_from_ledger=tuple(from_ledger),
    )
