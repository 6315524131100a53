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
import logging
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import CSVLogger
from tqdm.auto import tqdm

from lbench._io import atomic_write_json, atomic_write_text, read_json
from lbench.data.embeddings import EmbeddingDataModule
from lbench.errors import BudgetError, ConfigError, check_positive_int
from lbench.loop import ActiveLoop
from lbench.oracle import Oracle
from lbench.pool import LabelPool
from lbench.report.ledger import read_json_lines, read_ledger_file
from lbench.strategies.base import QueryStrategy

__all__ = ["ExperimentSpec", "format_table", "read_rounds", "run_experiment"]


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


@contextmanager
def _quiet_lightning() -> Any:
    names = ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda", "lightning.fabric")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels, strict=True):
            lg.setLevel(lv)


def run_experiment(
    spec: ExperimentSpec,
    model: L.LightningModule,
    datamodule: EmbeddingDataModule,
    out_dir: str | Path,
    trainer_kwargs: dict[str, Any] | None = None,
    oracle: Oracle | None = None,
    config_text: str | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run (or resume) a simulated active-learning experiment.

    Args:
        spec: Arms, seeds, rounds and budgets.
        model: Untrained template; each round trains a seeded deep copy.
        datamodule: Serves cached embeddings; its ``pool`` is set per arm and seed.
        out_dir: Run directory.
        trainer_kwargs: Keyword arguments of each round's ``lightning.Trainer``.
        oracle: Labels the selected items (default: the DataModule's simulated oracle).
        config_text: The resolved config, written to ``config.yaml``.
        progress: Show a progress bar over rounds.

    Returns:
        All round records of the run (including ones recorded before a resume).
    """
    out = Path(out_dir)
    spec.check_pool(datamodule.pool_size)  # loads the data: fails before anything is written
    meta_path = out / "run.json"
    if meta_path.exists():
        try:
            old = read_json(meta_path)
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"{meta_path} is unreadable ({e}); use another --out_dir") from e
        if old.get("settings") != spec.settings():
            raise ConfigError(f"{out} holds a run with other settings; use another --out_dir or the same config")
    records = read_rounds(out / "rounds.jsonl")
    embed_seconds = datamodule.prepare_embeddings()
    oracle = oracle or datamodule.make_oracle()
    is_zero = rank_zero_only.rank == 0
    if is_zero:
        atomic_write_json(meta_path, {"settings": spec.settings(), "pool_size": datamodule.pool_size})
        if config_text is not None:
            atomic_write_text(out / "config.yaml", config_text)
    done = {(r["arm"], r["seed"], r["round"]) for r in records}
    total = len(spec.arms) * len(spec.seeds) * (spec.rounds + 1)
    bar = tqdm(total=total, initial=len(done), desc="rounds", disable=not (progress and is_zero), unit="round")
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
                rec = _run_round(spec, arm, seed, rnd, model, datamodule, pool, oracle, arm_dir, trainer_kwargs or {})
                rec["embed_seconds"], embed_seconds = embed_seconds, 0.0
                records.append(rec)
                if is_zero:
                    pool.save(arm_dir / "pool.json")
                    atomic_write_text(out / "rounds.jsonl", "".join(json.dumps(r) + "\n" for r in records))
                bar.update(1)
    bar.close()
    return records


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
) -> dict[str, Any]:
    round_seed = _round_seed(seed, rnd)
    L.seed_everything(round_seed, verbose=False)
    model = copy.deepcopy(template)
    datamodule.pool = pool
    selecting = rnd < spec.rounds
    loop = ActiveLoop(arm, spec.budget, seed=round_seed, pool=pool)
    kwargs = copy.deepcopy(trainer_kwargs)
    kwargs["callbacks"] = [*kwargs.get("callbacks", []), loop]
    if kwargs.get("logger", True) is not False:
        kwargs["logger"] = CSVLogger(save_dir=arm_dir, name="", version=f"round_{rnd:02d}")
    kwargs.setdefault("default_root_dir", str(arm_dir / f"round_{rnd:02d}"))
    with _quiet_lightning():
        trainer = L.Trainer(**kwargs)
        t0 = time.perf_counter()
        trainer.fit(model, datamodule=datamodule)
        t1 = time.perf_counter()
        metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
        t2 = time.perf_counter()
        selected = torch.empty(0, dtype=torch.long)
        if selecting:
            trainer.predict(model, datamodule=datamodule, return_predictions=False)
            assert loop.selected is not None
            selected = loop.selected
    t3 = time.perf_counter()
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
        "train_seconds": round(t1 - t0, 4),
        "test_seconds": round(t2 - t1, 4),
        "score_seconds": round(t3 - t2 - loop.select_seconds, 4) if selecting else 0.0,
        "select_seconds": round(loop.select_seconds, 4) if selecting else 0.0,
        "selected": selected.tolist(),
        "label_counts": pool.label_counts(),
        "query": repr(arm),
        "rounds_total": spec.rounds,
    }
    if selecting:
        pool.add_labels(selected, oracle.query(selected), round=rnd + 1)
    return record


def format_table(records: list[dict[str, Any]], metric: str = "test_acc") -> str:
    """Per-round table of ``metric`` (in %), mean over seeds, one column per arm."""
    arms = list(dict.fromkeys(r["arm"] for r in records))
    rounds = sorted({r["round"] for r in records})
    cells: dict[tuple[int, str], list[float]] = {}
    labels: dict[int, int] = {}
    for r in records:
        cells.setdefault((r["round"], r["arm"]), []).append(100.0 * r[metric])
        labels[r["round"]] = r["num_labeled"]
    head = f"| round | labels | {' | '.join(arms)} |"
    lines = [head, "|" + "---|" * (len(arms) + 2)]
    for rnd in rounds:
        vals = [cells.get((rnd, a)) for a in arms]
        txt = [f"{sum(v) / len(v):.2f} (n={len(v)})" if v else "-" for v in vals]
        lines.append(f"| {rnd} | {labels[rnd]} | {' | '.join(txt)} |")
    return "\n".join(lines)
