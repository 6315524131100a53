"""The round driver behind ``lbench run``: arms x seeds x rounds of fit -> test -> score -> select.

Every round builds a fresh model (a deep copy of an untrained template, seeded) and a fresh
Trainer, as Lightning 2.x requires. Seeds are derived from ``(seed, round)``, so a run that is
started again in the same ``out_dir`` skips the recorded rounds and ends with the same
acquisition order as a run that was never stopped.

Outputs in ``out_dir``: ``rounds.jsonl`` (one JSON object per finished round),
``<arm>/seed_<seed>/pool.json`` (acquisition order), ``<arm>/seed_<seed>/round_XX/`` (Lightning
logs), ``run.json`` (the run's settings, checked on resume).
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import CSVLogger, Logger
from torch import Tensor

from lbench import console
from lbench._io import atomic_write_json, atomic_write_text, read_json
from lbench.console import progress
from lbench.data.embeddings import EmbeddingDataModule
from lbench.errors import BudgetError, ConfigError, check_positive_int
from lbench.locks import LockedError, locked_dir
from lbench.loop import ActiveLoop
from lbench.oracle import Oracle
from lbench.pool import LabelPool
from lbench.report.ledger import read_json_lines, read_ledger_file
from lbench.run_identity import check_resume, config_identity
from lbench.strategies.base import QueryStrategy

__all__ = ["ExperimentSpec", "LoggerFactory", "format_table", "read_rounds", "run_experiment"]

#: Builds the logger(s) of one round from ``(arm, seed, round)``.
LoggerFactory = Callable[[str, int, int], Logger | list[Logger]]


class ExperimentSpec:
    """What a run does (validated on construction, before any file is written).

    Args:
        arms: Query strategies to compare; names (``strategy.name``) must be distinct.
        seeds: Seeds; every arm of a seed starts from the same initial labeled set.
        rounds: Number of selection rounds after the initial set.
        budget: Items selected per round.
        initial_budget: Size of the initial random labeled set.
    """

    def __init__(
        self, arms: Sequence[QueryStrategy], seeds: Sequence[int], rounds: int, budget: int, initial_budget: int
    ) -> None:
        if not arms:
            raise ConfigError("give at least one arm (query strategy)")
        names = [a.name for a in arms]
        if len(set(names)) != len(names):
            raise ConfigError(f"arm names must be distinct, got {names}")
        if not seeds or len(set(seeds)) != len(seeds):
            raise ConfigError(f"seeds must be a non-empty list of distinct integers, got {list(seeds)}")
        if isinstance(rounds, bool) or rounds < 0:
            raise ConfigError(f"rounds must be >= 0, got {rounds}")
        for name, b in (("budget", budget), ("initial_budget", initial_budget)):
            check_positive_int(b, name, BudgetError)
        self.arms, self.seeds = list(arms), list(seeds)
        self.rounds, self.budget, self.initial_budget = rounds, budget, initial_budget

    @property
    def total_labels(self) -> int:
        """Labels acquired by the end of a run."""
        return self.initial_budget + self.rounds * self.budget

    def check_pool(self, pool_size: int) -> None:
        """Raise BudgetError when the pool is too small for the run."""
        if self.total_labels > pool_size:
            raise BudgetError(
                f"initial_budget + rounds * budget = {self.total_labels} labels, but the pool has only {pool_size} "
                "items; lower budget or rounds"
            )

    def settings(self) -> dict[str, Any]:
        """Plain description stored in ``run.json``."""
        return {
            "arms": {a.name: repr(a) for a in self.arms},
            "seeds": self.seeds,
            "rounds": self.rounds,
            "budget": self.budget,
            "initial_budget": self.initial_budget,
        }


def read_rounds(path: Path) -> list[dict[str, Any]]:
    """Read and validate a ``rounds.jsonl`` ledger (empty list when it does not exist).

    Raises:
        ReportError: A line is malformed (the message names file and line).
    """
    if not path.exists():
        return []
    read_ledger_file(path)  # validates every line and their consistency
    return [obj for _, obj in read_json_lines(path)]


def _round_seed(seed: int, rnd: int) -> int:
    return seed * 100_003 + rnd


def run_experiment(
    spec: ExperimentSpec,
    model: L.LightningModule,
    datamodule: EmbeddingDataModule,
    out_dir: str | Path,
    trainer_kwargs: dict[str, Any] | None = None,
    oracle: Oracle | None = None,
    config_text: str | None = None,
    progress_bar: bool = True,
    logger_factory: LoggerFactory | None = None,
) -> list[dict[str, Any]]:
    """Run, resume or extend a simulated active-learning experiment.

    A run directory that holds a run with the same settings resumes at its first unfinished
    round. One with fewer rounds, arms or seeds (and otherwise the same settings) is extended:
    its rounds stay valid (the last round of a shorter run, which did not select, is redone to
    select), and the result equals a run started with the new settings. Anything else is refused
    with a message naming the settings that differ.

    Args:
        spec: Arms, seeds, rounds and budgets.
        model: Untrained template; each round trains a seeded deep copy.
        datamodule: Serves cached embeddings; its ``pool`` is set per arm and seed.
        out_dir: Run directory.
        trainer_kwargs: Keyword arguments of each round's ``lightning.Trainer``; ``logger`` may be
            True/None (a CSV logger per round in ``<arm>/seed_<s>/round_XX``) or False.
        oracle: Labels the selected items (default: the DataModule's simulated oracle).
        config_text: The resolved config (YAML), written to ``config.yaml``; its settings that
            change results are part of the run's identity, checked on resume.
        progress_bar: Show progress over rounds.
        logger_factory: Builds each round's logger(s) from ``(arm, seed, round)`` (the user's
            configured loggers); overrides ``trainer_kwargs["logger"]``.

    Returns:
        All round records of the run (including ones recorded before a resume).

    Raises:
        LockedError: Another lbench process is running in ``out_dir``.
    """
    out = Path(out_dir)
    is_zero = rank_zero_only.rank == 0
    held: list[bool] = []
    with ExitStack() as stack:

        def lock() -> None:
            """Lock the run directory on rank 0, once (creating it when it is new)."""
            if is_zero and not held:
                out.mkdir(parents=True, exist_ok=True)
                stack.enter_context(locked_dir(out, f"run directory {out}", _LOCK_HINT))
                held.append(True)

        if out.is_dir():  # lock before reading its state; a new one is locked before the first write
            lock()
        return _run_experiment(
            spec, model, datamodule, out, trainer_kwargs, oracle, config_text, progress_bar, logger_factory, lock
        )


_LOCK_HINT = "wait for it to finish, or use another --out_dir"


def _run_experiment(
    spec: ExperimentSpec,
    model: L.LightningModule,
    datamodule: EmbeddingDataModule,
    out: Path,
    trainer_kwargs: dict[str, Any] | None,
    oracle: Oracle | None,
    config_text: str | None,
    progress_bar: bool,
    logger_factory: LoggerFactory | None,
    lock: Callable[[], None],
) -> list[dict[str, Any]]:
    trainer_kwargs = dict(trainer_kwargs or {})
    if logger_factory is None and trainer_kwargs.get("logger") not in (None, True, False):
        raise ConfigError("a run trains one model per round: pass logger_factory to build a logger per round")
    spec.check_pool(datamodule.pool_size)  # loads the data: fails before anything is written
    meta_path = out / "run.json"
    identity = config_identity(config_text)
    old_meta: dict[str, Any] = {}
    if meta_path.exists():
        try:
            old_meta = read_json(meta_path)
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"{meta_path} is unreadable ({e}); use another --out_dir") from e
    records = read_rounds(out / "rounds.jsonl")
    if old_meta:
        check_resume(out, old_meta, spec.settings(), identity)
        old_rounds = int(old_meta["settings"]["rounds"])
        if spec.rounds > old_rounds:  # the old last round did not select: redo it
            records = [{**r, "rounds_total": spec.rounds} for r in records if r["round"] < old_rounds]
    console.where["at"] = "embedding the data (the cache keeps what is done)"
    embed_seconds = datamodule.prepare_embeddings()
    oracle = oracle or datamodule.make_oracle()
    is_zero = rank_zero_only.rank == 0
    lock()
    if is_zero and not old_meta and meta_path.exists():
        raise LockedError(f"another lbench process started a run in {out} at the same time; {_LOCK_HINT}")
    if is_zero:
        description = _describe(spec, datamodule, embed_seconds + float(old_meta.get("description", {}).get(
            "embed_seconds", 0.0)))  # fmt: skip
        meta = {"settings": spec.settings(), "config": identity, "pool_size": datamodule.pool_size,
                "description": description}  # fmt: skip
        atomic_write_json(meta_path, meta)
        atomic_write_text(out / "rounds.jsonl", "".join(json.dumps(r) + "\n" for r in records))
        if config_text is not None:
            atomic_write_text(out / "config.yaml", config_text)
    done = {(r["arm"], r["seed"], r["round"]) for r in records}
    total = len(spec.arms) * len(spec.seeds) * (spec.rounds + 1)
    bar = progress(total, "rounds", unit="round", initial=len(done), disable=not (progress_bar and is_zero))
    try:
        for seed in spec.seeds:
            initial = torch.randperm(datamodule.pool_size, generator=torch.Generator().manual_seed(seed))
            initial = initial[: spec.initial_budget]
            for arm in spec.arms:
                arm_dir = out / arm.name / f"seed_{seed}"
                last = max((r["round"] for r in records if r["arm"] == arm.name and r["seed"] == seed), default=-1)
                pool = _restore_pool(datamodule, arm_dir / "pool.json", last)
                if pool.num_labeled == 0:
                    pool.add_labels(initial, oracle.query(initial), round=0)
                for rnd in range(last + 1, spec.rounds + 1):
                    console.where["at"] = f"{arm.name} seed {seed} round {rnd}"
                    logger = logger_factory(arm.name, seed, rnd) if logger_factory is not None else None
                    rec = _run_round(
                        spec, arm, seed, rnd, model, datamodule, pool, oracle, arm_dir, trainer_kwargs, logger
                    )
                    rec["embed_seconds"] = 0.0  # one shared cost of the run, in run.json's description
                    records.append(rec)
                    if is_zero:
                        pool.save(arm_dir / "pool.json")
                        atomic_write_text(out / "rounds.jsonl", "".join(json.dumps(r) + "\n" for r in records))
                    bar.update(1)
                    if hasattr(bar, "set_postfix_str"):
                        bar.set_postfix_str(f"{arm.name} seed {seed} round {rnd}: acc {100 * rec['test_acc']:.1f}%")
    finally:
        bar.close()
    console.where["at"] = ""  # (kept on an exception: the Ctrl-C message says where the run stopped)
    return records


def _describe(spec: ExperimentSpec, datamodule: EmbeddingDataModule, embed_seconds: float) -> dict[str, Any]:
    """What the run is about, for the report's header (run.json ``description``)."""
    return {
        "dataset": type(datamodule.dataset).__name__,
        "encoder": type(datamodule.encoder).__name__,
        "class_names": list(datamodule.dataset.class_names) if datamodule.dataset.class_names else None,
        "budget": spec.budget,
        "initial_budget": spec.initial_budget,
        "seeds": spec.seeds,
        "rounds": spec.rounds,
        "arms": [a.name for a in spec.arms],
        "pool_size": datamodule.pool_size,
        "embed_seconds": round(embed_seconds, 4),
    }


def _restore_pool(datamodule: EmbeddingDataModule, path: Path, last_round: int) -> LabelPool:
    """The pool as it was after ``last_round`` was recorded (later acquisitions are redone)."""
    pool = datamodule.new_pool()
    if last_round < 0 or not path.exists():
        return pool
    saved = LabelPool.load(path)
    state = saved.state_dict()
    keep = [k for k, (r, _) in enumerate(state["order"]) if r <= last_round + 1]
    state["order"] = [state["order"][k] for k in keep]
    state["labels"] = [state["labels"][k] for k in keep]
    pool.load_state_dict(state)
    return pool


def _run_round(
    spec: ExperimentSpec,
    arm: QueryStrategy,
    seed: int,
    rnd: int,
    template: L.LightningModule,
    datamodule: EmbeddingDataModule,
    pool: LabelPool,
    oracle: Oracle,
    arm_dir: Path,
    trainer_kwargs: dict[str, Any],
    logger: Logger | list[Logger] | None,
) -> dict[str, Any]:
    round_seed = _round_seed(seed, rnd)
    L.seed_everything(round_seed, verbose=False)
    model = copy.deepcopy(template)
    datamodule.pool = pool
    selecting = rnd < spec.rounds
    loop = ActiveLoop(arm, spec.budget if selecting else None, seed=round_seed, pool=pool)
    kwargs = copy.deepcopy(trainer_kwargs)
    kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), loop]
    round_dir = arm_dir / f"round_{rnd:02d}"
    if rank_zero_only.rank == 0 and round_dir.exists():
        shutil.rmtree(round_dir)  # the logs of an unfinished attempt at this round (resume)
    if logger is not None:
        kwargs["logger"] = logger
    elif kwargs.get("logger", True) is not False:
        kwargs["logger"] = CSVLogger(save_dir=arm_dir, name="", version=f"round_{rnd:02d}")
    kwargs.setdefault("default_root_dir", str(round_dir))
    trainer = L.Trainer(**kwargs)
    where = console.where["at"]
    t0 = time.perf_counter()
    console.where["at"] = f"{where} (fit)"
    trainer.fit(model, datamodule=datamodule)
    t1 = time.perf_counter()
    console.where["at"] = f"{where} (test)"
    metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    t2 = time.perf_counter()
    console.where["at"] = f"{where} (score" + (" and select)" if selecting else ")")
    trainer.predict(model, datamodule=datamodule, return_predictions=False)
    selected = loop.selected if selecting and loop.selected is not None else torch.empty(0, dtype=torch.long)
    t3 = time.perf_counter()
    console.where["at"] = where
    extra: dict[str, float] = {}
    if "test/min_class_acc" in metrics:
        extra["test_min_class_acc"] = float(metrics["test/min_class_acc"])
    if loop.pool_predictions is not None and (acc := pool_accuracy(pool, loop.pool_predictions, oracle)) is not None:
        extra["pool_acc"] = acc
    record = {
        "arm": arm.name,
        "seed": seed,
        "round": rnd,
        "num_labeled": pool.num_labeled,
        "budget": spec.budget,
        "num_classes": pool.num_classes,
        "test_acc": float(metrics["test/acc"]),
        "test_balanced_acc": float(metrics["test/balanced_acc"]),
        "test_macro_f1": float(metrics["test/macro_f1"]),
        **extra,
        "train_seconds": round(t1 - t0, 4),
        "test_seconds": round(t2 - t1, 4),
        "score_seconds": round(t3 - t2 - loop.select_seconds, 4),
        "select_seconds": round(loop.select_seconds, 4) if selecting else 0.0,
        "selected": selected.tolist(),
        "label_counts": pool.label_counts(),
        "query": repr(arm),
        "rounds_total": spec.rounds,
    }
    if selecting:
        pool.add_labels(selected, oracle.query(selected), round=rnd + 1)
    return record


def pool_accuracy(pool: LabelPool, predictions: Tensor, oracle: Oracle) -> float | None:
    """The paper's pool accuracy: the labels given plus the model's predictions on the rest, vs ground truth.

    Simulated runs only (None for a person's oracle): the truth stays in the oracle, is asked after
    selection, and is never shown to a strategy.
    """
    return oracle.pool_accuracy(torch.where(pool.labels >= 0, pool.labels, predictions))


def format_table(records: list[dict[str, Any]], metric: str = "test_acc") -> str:
    """Per-round table of ``metric`` (in %), mean over seeds, one column per arm.

    A cell averaged over fewer seeds than the others (a run in progress) shows ``(n=k)``.
    """
    arms = list(dict.fromkeys(r["arm"] for r in records))
    rounds = sorted({r["round"] for r in records})
    cells: dict[tuple[int, str], list[float]] = {}
    labels: dict[int, int] = {}
    for r in records:
        cells.setdefault((r["round"], r["arm"]), []).append(100.0 * r[metric])
        labels[r["round"]] = r["num_labeled"]
    head = f"| round | labels | {' | '.join(arms)} |"
    lines = [head, "|" + "---|" * (len(arms) + 2)]
    full = max((len(v) for v in cells.values()), default=0)
    for rnd in rounds:
        vals = [cells.get((rnd, a)) for a in arms]
        txt = [f"{sum(v) / len(v):.2f}" + (f" (n={len(v)})" if len(v) < full else "") if v else "-" for v in vals]
        lines.append(f"| {rnd} | {labels[rnd]} | {' | '.join(txt)} |")
    return "\n".join(lines)
