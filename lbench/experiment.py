"""The round driver behind ``lbench run``: arms x seeds x rounds of fit -> test -> score -> select.

Every round builds a fresh model (a deep copy of an untrained template, seeded) and a fresh
Trainer, as Lightning 2.x requires. Seeds are derived from ``(seed, round)``, so a run that is
started again in the same ``out_dir`` skips the recorded rounds and ends with the same
acquisition order as a run that was never stopped.

With ``point_eval``, each arm and seed ends with the point evaluation: a model fine-tuned end to
end on the final labeled set (:mod:`lbench.point_eval`).

Outputs in ``out_dir``: ``rounds.jsonl`` (one JSON object per finished round, with the run's
``run_id`` and the stop signal's ``stop_kappa``), ``point_eval.jsonl`` (one per arm and seed),
``<arm>/seed_<seed>/pool.json`` (acquisition order), ``<arm>/seed_<seed>/round_XX/`` and
``point_eval/`` (Lightning logs), ``run.json`` (the run's settings, config identity and identity
hash, checked on resume; see :mod:`lbench.run_identity`).
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import CSVLogger, Logger

from lbench import console
from lbench._io import atomic_write_json, atomic_write_text, read_json, remove_stale_temps
from lbench.acquire import journal_acquisition
from lbench.console import progress
from lbench.data.pool_module import PoolDataModule
from lbench.errors import BudgetError, ConfigError, check_positive_int
from lbench.faults import kill_point
from lbench.locks import LockedError, locked_dir
from lbench.oracle import Oracle
from lbench.phase import pool_accuracy, record_scores
from lbench.point_eval import PointEvaluation
from lbench.pool import LabelPool
from lbench.records import METRICS, RoundRecord
from lbench.report.ledger import read_json_lines, read_ledger_file, read_point_eval_file
from lbench.round_phases import RoundFiles, clear_work, run_round_phases
from lbench.run_identity import (
    check_point_eval_resume,
    check_resume,
    check_run_identity,
    config_identity,
    point_eval_identity,
)
from lbench.scores import SCORE_DTYPES
from lbench.stopping import record_kappa, stop_predictions
from lbench.strategies.base import QueryStrategy

__all__ = [
    "ExperimentSpec",
    "LoggerFactory",
    "format_table",
    "phase_trainer_kwargs",
    "pool_accuracy",
    "read_rounds",
    "run_experiment",
]

#: Builds the logger(s) of one round from ``(arm, seed, round)`` (``round`` ``"point_eval"`` for the point evaluation).
LoggerFactory = Callable[[str, int, int | str], Logger | list[Logger]]


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
    """Read and validate a ``rounds.jsonl`` ledger (empty list when it does not exist): its lines as written.

    Raises:
        ReportError: A line is malformed (the message names file and line).
    """
    if not path.exists():
        return []
    return [r.to_json() for r in read_ledger_file(path)]  # validates every line and their consistency


def read_point_eval(path: Path) -> list[dict[str, Any]]:
    """Read and validate a ``point_eval.jsonl`` ledger (empty list when it does not exist).

    Raises:
        ReportError: A line is malformed, or an arm and seed appear twice (the message names file and line).
    """
    if not path.exists():
        return []
    read_point_eval_file(path)  # validates every line, one line per arm and seed
    return [obj for _, obj in read_json_lines(path)]


def _round_seed(seed: int, rnd: int) -> int:
    return seed * 100_003 + rnd


POINT_EVAL = "point_eval"
"""Name of the point-evaluation phase (its log folder, its logger version's suffix)."""
POINT_EVAL_FILE = "point_eval.jsonl"
WORK = "work"
"""Folder (in ``<arm>/seed_<s>/``) of the unfinished round's phase outputs (:mod:`lbench.round_phases`)."""
POINT_EVAL_ROUND = 50_000
"""Seeds of the point evaluation are derived as those of a round with this number (no run has as many)."""


def run_experiment(
    spec: ExperimentSpec,
    model: L.LightningModule,
    datamodule: PoolDataModule,
    out_dir: str | Path,
    trainer_kwargs: dict[str, Any] | None = None,
    oracle: Oracle | None = None,
    config_text: str | None = None,
    progress_bar: bool = True,
    logger_factory: LoggerFactory | None = None,
    point_eval: PointEvaluation | None = None,
    score_dtype: str = "float32",
    sharded_selection: bool = False,
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
        datamodule: Serves the pool and test split (cached embeddings for a proxy, images for a
            model fine-tuned every round); its ``pool`` is set per arm and seed.
        out_dir: Run directory.
        trainer_kwargs: Keyword arguments of each round's ``lightning.Trainer``; ``logger`` may be
            True/None (a CSV logger per round in ``<arm>/seed_<s>/round_XX``) or False.
        oracle: Labels the selected items (default: the DataModule's simulated oracle).
        config_text: The resolved config (YAML), written to ``config.yaml``; its settings that
            change results are part of the run's identity, checked on resume.
        progress_bar: Show progress over rounds.
        logger_factory: Builds each round's logger(s) from ``(arm, seed, round)`` (the user's
            configured loggers; ``round`` is ``"point_eval"`` for the point evaluation); overrides
            ``trainer_kwargs["logger"]``.
        point_eval: After the last round of each arm and seed, fine-tune this model on the
            final labeled set and record it in ``point_eval.jsonl`` (see :mod:`lbench.point_eval`).
            Its settings are checked on resume apart from the rounds': adding it to a finished
            run evaluates the run's labeled sets without redoing a round.
        score_dtype: Storage type of the pool's score shards (:mod:`lbench.scores`): ``float32``
            (selections exactly those of one process in memory) or ``float16`` (half the disk and
            rank 0 memory, for large pools).
        sharded_selection: Under DDP, run BADGE and coreset on every rank over its part of the pool
            (exact k-means++ / k-center across ranks, :mod:`lbench.strategies.sharded`) instead of on
            rank 0 alone.

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
            spec,
            model,
            datamodule,
            out,
            trainer_kwargs,
            oracle,
            config_text,
            progress_bar,
            logger_factory,
            lock,
            point_eval,
            score_dtype,
            sharded_selection,
        )


_LOCK_HINT = "wait for it to finish, or use another --out_dir"


def _run_experiment(
    spec: ExperimentSpec,
    model: L.LightningModule,
    datamodule: PoolDataModule,
    out: Path,
    trainer_kwargs: dict[str, Any] | None,
    oracle: Oracle | None,
    config_text: str | None,
    progress_bar: bool,
    logger_factory: LoggerFactory | None,
    lock: Callable[[], None],
    point_eval: PointEvaluation | None,
    score_dtype: str,
    sharded_selection: bool,
) -> list[dict[str, Any]]:
    if score_dtype not in SCORE_DTYPES:
        raise ConfigError(f"score_dtype must be one of {', '.join(SCORE_DTYPES)}, got {score_dtype!r}")
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
    pe_identity = point_eval_identity(config_text) if point_eval is not None else None
    pe_records = read_point_eval(out / POINT_EVAL_FILE)
    if old_meta:
        check_resume(out, old_meta, spec.settings(), identity)
        pe_records = check_point_eval_resume(out, old_meta.get("point_eval"), pe_identity, pe_records,
                                             spec.total_labels)  # fmt: skip
        old_rounds = int(old_meta["settings"]["rounds"])
        if spec.rounds > old_rounds:  # the old last round did not select: redo it
            records = [{**r, "rounds_total": spec.rounds} for r in records if r["round"] < old_rounds]
    run_id, data_ident, identity = check_run_identity(out, old_meta, spec.settings(), identity, datamodule)
    records = [{**r, "run_id": run_id} for r in records]  # older lines get the identity just checked
    pe_records = [{**r, "run_id": run_id} for r in pe_records]
    oracle = oracle or datamodule.make_oracle()  # refuses a pool without ground truth before any work
    console.where["at"] = "embedding the data (the cache keeps what is done)"
    embed_seconds = datamodule.prepare_embeddings()
    is_zero = rank_zero_only.rank == 0
    lock()
    if is_zero:
        remove_stale_temps(out)  # of atomic writes a crash interrupted (we hold the run directory's lock)
    if is_zero and not old_meta and meta_path.exists():
        raise LockedError(f"another lbench process started a run in {out} at the same time; {_LOCK_HINT}")
    if is_zero:
        description = _describe(spec, datamodule, embed_seconds + float(old_meta.get("description", {}).get(
            "embed_seconds", 0.0)))  # fmt: skip
        meta = {"settings": spec.settings(), "config": identity, "identity": run_id, "identity_of": data_ident,
                "pool_size": datamodule.pool_size, "description": description}  # fmt: skip
        if pe_identity is not None or pe_records:
            meta["point_eval"] = pe_identity if pe_identity is not None else old_meta.get("point_eval")
        atomic_write_json(meta_path, meta)
        atomic_write_text(out / "rounds.jsonl", "".join(json.dumps(r) + "\n" for r in records))
        if config_text is not None:
            atomic_write_text(out / "config.yaml", config_text)
    done = {(r["arm"], r["seed"], r["round"]) for r in records}
    total = len(spec.arms) * len(spec.seeds) * (spec.rounds + 1 + (point_eval is not None))
    pe_done = {(r["arm"], r["seed"]) for r in pe_records}
    done_phases = len(done) + (len(pe_done) if point_eval is not None else 0)
    bar = progress(total, "rounds", unit="round", initial=done_phases, disable=not (progress_bar and is_zero))
    try:
        for seed in spec.seeds:
            initial = torch.randperm(datamodule.pool_size, generator=torch.Generator().manual_seed(seed))
            initial = initial[: spec.initial_budget]
            for arm in spec.arms:
                arm_dir = out / arm.name / f"seed_{seed}"
                last = max((r["round"] for r in records if r["arm"] == arm.name and r["seed"] == seed), default=-1)
                pool = _restore_pool(datamodule, arm_dir / "pool.json", last)
                if pool.num_labeled == 0:
                    _acquire(pool, arm_dir / "pool.json", initial, oracle, 0, datamodule, is_zero)
                if is_zero:  # work folders of recorded rounds (a kill after the record, before the cleanup)
                    clear_work(arm_dir / WORK, keep_from=last + 1)
                for rnd in range(last + 1, spec.rounds + 1):
                    console.check_interrupt()
                    console.where["at"] = f"{arm.name} seed {seed} round {rnd}"
                    logger = logger_factory(arm.name, seed, rnd) if logger_factory is not None else None
                    rec = _run_round(spec, arm, seed, rnd, model, datamodule, pool, oracle, arm_dir, trainer_kwargs,
                                     logger, score_dtype, sharded_selection)  # fmt: skip
                    # κ vs the previous round's record (resume-exact); the run's identity (run.json), checked by
                    # the report when merging; the embedding time is the run's (run.json's description), not a round's
                    kappa = record_kappa(records, rec.to_json())
                    rec = replace(rec, stop_kappa=kappa, run_id=run_id, seconds={**rec.seconds, "embed_seconds": 0.0})
                    records.append(rec.to_json())
                    if is_zero:
                        atomic_write_text(out / "rounds.jsonl", "".join(json.dumps(r) + "\n" for r in records))
                        if rnd == spec.rounds:  # the last round selects nothing: no rank reads its folder
                            clear_work(arm_dir / WORK)
                    kill_point("acquire", rnd, arm.name, seed)
                    bar.update(1)
                    if hasattr(bar, "set_postfix_str"):
                        bar.set_postfix_str(
                            f"{arm.name} seed {seed} round {rnd}: acc {100 * rec.metrics['test_acc']:.1f}%"
                        )
                if point_eval is not None and (arm.name, seed) not in pe_done:
                    console.check_interrupt()
                    console.where["at"] = f"{arm.name} seed {seed} point evaluation"
                    logger = logger_factory(arm.name, seed, POINT_EVAL) if logger_factory is not None else None
                    last_rec = next(r for r in reversed(records) if r["arm"] == arm.name and r["seed"] == seed)
                    rec = _point_evaluate(point_eval, arm, seed, datamodule, pool, oracle, arm_dir, trainer_kwargs,
                                          logger, last_rec)  # fmt: skip
                    rec["run_id"] = run_id
                    pe_records.append(rec)
                    if is_zero:
                        atomic_write_text(out / POINT_EVAL_FILE, "".join(json.dumps(r) + "\n" for r in pe_records))
                        clear_work(arm_dir / WORK)
                    bar.update(1)
    finally:
        bar.close()
    console.where["at"] = ""  # (kept on an exception: the Ctrl-C message says where the run stopped)
    return records


def _point_evaluate(
    point_eval: PointEvaluation,
    arm: QueryStrategy,
    seed: int,
    datamodule: PoolDataModule,
    pool: LabelPool,
    oracle: Oracle,
    arm_dir: Path,
    trainer_kwargs: dict[str, Any],
    logger: Logger | list[Logger] | None,
    proxy: dict[str, Any],
) -> dict[str, Any]:
    """Fine-tune a fresh copy of ``point_eval.model`` on ``pool``'s labels; the ``point_eval.jsonl`` record."""
    phase_seed = _round_seed(seed, POINT_EVAL_ROUND)
    L.seed_everything(phase_seed, verbose=False)
    model = point_eval.fresh_model()
    images = point_eval.datamodule(datamodule.dataset, pool, view_seed=phase_seed)
    files = RoundFiles(arm_dir / WORK / POINT_EVAL)  # the round's phases without a selection
    fresh = files.next_phase(selecting=False) == "fit"
    kwargs = phase_trainer_kwargs(point_eval.trainer_kwargs(trainer_kwargs), arm_dir, POINT_EVAL, logger, fresh)
    out = run_round_phases(model, images, kwargs, files, pool, arm, None, phase_seed, oracle)
    scores = record_scores(out.metrics, out.pool_predictions, pool, oracle)
    return {
        "arm": arm.name,
        "seed": seed,
        "num_labeled": pool.num_labeled,
        "model": repr(point_eval),
        "ssl": point_eval.ssl_name,
        **scores,
        "pool_acc": scores.get("pool_acc"),
        "proxy_test_acc": proxy["test_acc"],
        "proxy_pool_acc": proxy.get("pool_acc"),
        "train_seconds": out.train_seconds,
        "test_seconds": out.test_seconds,
    }


def _describe(spec: ExperimentSpec, datamodule: PoolDataModule, embed_seconds: float) -> dict[str, Any]:
    """What the run is about, for the report's header (run.json ``description``)."""
    return {
        "dataset": type(datamodule.dataset).__name__,
        "encoder": type(encoder).__name__ if (encoder := getattr(datamodule, "encoder", None)) is not None else None,
        "class_names": list(datamodule.dataset.class_names) if datamodule.dataset.class_names else None,
        "budget": spec.budget,
        "initial_budget": spec.initial_budget,
        "seeds": spec.seeds,
        "rounds": spec.rounds,
        "arms": [a.name for a in spec.arms],
        "pool_size": datamodule.pool_size,
        "embed_seconds": round(embed_seconds, 4),
    }


def _restore_pool(datamodule: PoolDataModule, path: Path, last_round: int) -> LabelPool:
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
    datamodule: PoolDataModule,
    pool: LabelPool,
    oracle: Oracle,
    arm_dir: Path,
    trainer_kwargs: dict[str, Any],
    logger: Logger | list[Logger] | None,
    score_dtype: str,
    sharded_selection: bool = False,
) -> RoundRecord:
    """Run (or finish, after a kill) one round's phases and acquire its selection; the round's record.

    The record's ``stop_kappa`` and ``run_id`` are the driver's to fill in (they depend on the ledger).
    """
    round_seed = _round_seed(seed, rnd)
    L.seed_everything(round_seed, verbose=False)
    model = copy.deepcopy(template)
    datamodule.pool = pool
    selecting = rnd < spec.rounds
    files = RoundFiles(arm_dir / WORK / f"round_{rnd:02d}")
    fresh = files.next_phase(selecting) == "fit"
    kwargs = phase_trainer_kwargs(trainer_kwargs, arm_dir, f"round_{rnd:02d}", logger, fresh=fresh)
    if getattr(datamodule, "shards_itself", False):  # one global batch sequence for any number of ranks
        kwargs["use_distributed_sampler"] = False
    is_zero = rank_zero_only.rank == 0

    def after(phase: str) -> None:
        if phase == "fit" and is_zero:  # every rank is past the earlier rounds (fit is collective)
            clear_work(arm_dir / WORK, keep_from=rnd)
        kill_point(phase, rnd, arm.name, seed)

    out = run_round_phases(model, datamodule, kwargs, files, pool, arm, spec.budget if selecting else None,
                           round_seed, oracle, score_dtype, after, sharded_selection)  # fmt: skip
    scores = record_scores(out.metrics, out.pool_predictions, pool, oracle)
    stop = stop_predictions(out.pool_predictions, seed)  # see lbench.stopping
    record = RoundRecord(
        arm=arm.name,
        seed=seed,
        round=rnd,
        num_labeled=pool.num_labeled,
        rounds_total=spec.rounds,
        metrics={k: v for k, v in scores.items() if k in METRICS},
        min_class_acc=scores.get("test_min_class_acc"),
        seconds={
            "train_seconds": out.train_seconds,
            "test_seconds": out.test_seconds,
            "score_seconds": out.score_seconds,
            "select_seconds": out.select_seconds,
        },  # fmt: skip
        selected=tuple(out.selected.tolist()),
        label_counts=tuple(pool.label_counts()),
        budget=spec.budget,
        num_classes=pool.num_classes,
        query=repr(arm),
        stop_predictions=tuple(stop) if stop is not None else None,
    )
    if selecting:
        _acquire(pool, arm_dir / "pool.json", out.selected, oracle, rnd + 1, datamodule, rank_zero_only.rank == 0)
        kill_point("journal", rnd, arm.name, seed)  # labels journaled, the round's record not yet written
    return record


def _acquire(
    pool: LabelPool, pool_file: Path, index: torch.Tensor, oracle: Oracle, rnd: int, datamodule: PoolDataModule,
    is_zero: bool,
) -> None:  # fmt: skip
    """The oracle labels ``index`` for round ``rnd``: into the in-memory pool and, on rank 0, through the journal."""
    labels = oracle.query(index)
    if is_zero:
        journal_acquisition(pool_file, index, labels, rnd, datamodule.new_pool())
    pool.add_labels(index, labels, round=rnd)


def phase_trainer_kwargs(
    trainer_kwargs: dict[str, Any],
    arm_dir: Path,
    name: str,
    logger: Logger | list[Logger] | None,
    fresh: bool = True,
) -> dict[str, Any]:
    """The Trainer arguments of one phase (a round, or the point evaluation) of an arm and seed.

    Logs to ``logger``, or (unless logging is off) a CSV logger in ``arm_dir/name``; when ``fresh``
    (the phase starts from the beginning), removes what an unfinished earlier attempt left in that folder.
    """
    kwargs = copy.deepcopy(trainer_kwargs)
    phase_dir = arm_dir / name
    if fresh and rank_zero_only.rank == 0 and phase_dir.exists():
        shutil.rmtree(phase_dir)  # the logs of an unfinished attempt at this phase (resume)
    if logger is not None:
        kwargs["logger"] = logger
    elif kwargs.get("logger", True) is not False:
        kwargs["logger"] = CSVLogger(save_dir=arm_dir, name="", version=name)
    kwargs.setdefault("default_root_dir", str(phase_dir))
    return kwargs


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
