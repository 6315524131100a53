"""The phases of one round of ``lbench run``, each with its output on disk: fit -> test -> score -> select.

A round's work folder (``<arm>/seed_<s>/work/round_XX/``) holds what each phase made, written
atomically by rank 0 (the score shards by every rank):

========  ==========================================  =====================================
phase     output                                      the next phase reads
========  ==========================================  =====================================
fit       ``model.ckpt`` (weights), ``fit.json``      test and score load the weights
test      ``test.json`` (metrics, seconds)            the round record
score     ``scores/rank_<r>_of_<w>/``, ``score.json``  select (rank 0, memory-mapped)
select    ``selection.json`` (chosen pool indices)    acquire (every rank)
========  ==========================================  =====================================

The driver then acquires (the oracle's labels into ``pool.json``, the record into
``rounds.jsonl``) and the folder is removed. The point evaluation runs the same phases without a
selection, in ``<arm>/seed_<s>/work/point_eval/``. A run killed anywhere restarts the round at its first
missing output (:meth:`RoundFiles.next_phase`, decided once per round, the same on every rank), so
a long selection is never redone because of a kill after it, and a kill during it redoes only it.

Selection runs on rank 0 alone, outside any collective: the other ranks wait for
``selection.json`` by polling the file (:func:`lbench.distributed.wait_until`), so no
process-group timeout applies however long the strategy takes. Rank 0 reads the pool's rows
from the shards; the other ranks never hold more than their own ``N / world`` rows.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from torch import Tensor

from lbench import console
from lbench._io import atomic_write_json, read_json
from lbench.distributed import wait_until
from lbench.errors import ConfigError
from lbench.loop import make_view, predicted_classes, select_batch
from lbench.oracle import Oracle
from lbench.pool import LabelPool
from lbench.scores import KEYS, ScoreShardWriter, read_score_shards, shards_complete
from lbench.strategies.badge import Badge
from lbench.strategies.base import QueryStrategy
from lbench.strategies.coreset import Coreset

__all__ = ["PHASES", "SHARDED", "RoundFiles", "RoundOutputs", "clear_work", "run_round_phases", "select_sharded_part"]

PHASES = ("fit", "test", "score", "select", "acquire")
"""The phases of a round, in order (``acquire`` is the driver's: labels into the pool, the record into the ledger)."""


@dataclass(frozen=True)
class RoundFiles:
    """The work folder of one round and its phases' outputs."""

    folder: Path

    @property
    def model(self) -> Path:
        """The trained weights (a Lightning checkpoint, weights only)."""
        return self.folder / "model.ckpt"

    @property
    def fit(self) -> Path:
        """``{"train_seconds": ...}``, written after ``model.ckpt``: the fit phase's completion mark."""
        return self.folder / "fit.json"

    @property
    def test(self) -> Path:
        """``{"metrics": {...}, "test_seconds": ...}``."""
        return self.folder / "test.json"

    @property
    def scores(self) -> Path:
        """The score shards' folder."""
        return self.folder / "scores"

    @property
    def score(self) -> Path:
        """``{"score_seconds": ...}``, written after every shard: the score phase's completion mark."""
        return self.folder / "score.json"

    @property
    def selection(self) -> Path:
        """``{"selected": [...], "select_seconds": ...}`` (and ``"ranks"`` when every rank selected its part)."""
        return self.folder / "selection.json"

    def next_phase(self, selecting: bool) -> str:
        """The first phase whose output is missing (``acquire`` when all are there)."""
        if not (self.model.is_file() and self.fit.is_file()):
            return "fit"
        if not self.test.is_file():
            return "test"
        if not (self.score.is_file() and shards_complete(self.scores)):
            return "score"
        if selecting and not self.selection.is_file():
            return "select"
        return "acquire"


@dataclass
class RoundOutputs:
    """What a round's phases produced (read back from disk for the phases a resumed round skipped).

    Attributes:
        metrics: ``trainer.test`` metrics.
        train_seconds: Time in ``fit`` (of the attempt that ran it).
        test_seconds: Time in ``test``.
        score_seconds: Time in ``predict`` over the pool, shards written.
        select_seconds: Time of the strategy (0 when not selecting).
        selected: Chosen pool indices (empty when not selecting), on every rank.
        pool_predictions: ``[pool size]`` predicted classes (rank 0 only; None elsewhere).
    """

    metrics: dict[str, float]
    train_seconds: float
    test_seconds: float
    score_seconds: float
    select_seconds: float
    selected: Tensor
    pool_predictions: Tensor | None


def run_round_phases(
    model: L.LightningModule,
    datamodule: L.LightningDataModule,
    trainer_kwargs: dict[str, Any],
    files: RoundFiles,
    pool: LabelPool,
    query: QueryStrategy,
    budget: int | None,
    seed: int,
    oracle: Oracle | None,
    score_dtype: str = "float32",
    after: Callable[[str], None] | None = None,
    sharded: bool = False,
) -> RoundOutputs:
    """Run the round's missing phases on one Trainer; read the others' outputs from ``files``.

    Args:
        model: A fresh, seeded model (trained here, or loaded from ``files.model``).
        datamodule: Serves the labeled set, the test split and the pool.
        trainer_kwargs: The Trainer's arguments; a :class:`~lbench.scores.ScoreShardWriter` is added.
        files: The round's work folder.
        pool: The label pool (read by the strategy).
        query: The strategy.
        budget: Items to select; None for the last round (score only).
        seed: Seed of the strategy's generator.
        oracle: For interactive strategies.
        score_dtype: Storage type of the score shards.
        after: Called with each phase's name once its output is on disk (fault injection).
        sharded: On several ranks, run a strategy that has a sharded kernel (BADGE, coreset) on
            every rank over its contiguous part of the pool (:func:`select_sharded_part`) instead
            of on rank 0 alone; other strategies select on rank 0 as usual.
    """
    selecting = budget is not None
    start = files.next_phase(selecting)
    after = after or (lambda phase: None)
    keep = selecting and getattr(query, "requires_embeddings", True)  # a phase that selects nothing needs none
    writer = ScoreShardWriter(files.scores, score_dtype, embeddings=keep)
    kwargs = dict(trainer_kwargs)
    kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), writer]
    trainer = L.Trainer(**kwargs)
    is_zero = trainer.is_global_zero
    where = console.where["at"]
    ckpt: str | None = None  # weights still to load into ``model``
    order = PHASES.index(start)

    if order <= PHASES.index("fit"):
        console.where["at"] = f"{where} (fit)"
        t0 = time.perf_counter()
        trainer.fit(model, datamodule=datamodule)
        console.check_interrupt()
        train_seconds = round(time.perf_counter() - t0, 4)
        tmp = files.folder / f".model.{os.getpid()}.ckpt.tmp"
        if is_zero:
            files.folder.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(tmp, weights_only=True)  # every rank calls it; rank 0 writes
        if is_zero:
            os.replace(tmp, files.model)
            atomic_write_json(files.fit, {"train_seconds": train_seconds})
        after("fit")
    else:
        ckpt = str(files.model)
        train_seconds = float(read_json(files.fit)["train_seconds"])

    if order <= PHASES.index("test"):
        console.where["at"] = f"{where} (test)"
        t0 = time.perf_counter()
        metrics = {k: float(v) for k, v in trainer.test(model, datamodule=datamodule, verbose=False,
                                                        ckpt_path=ckpt)[0].items()}  # fmt: skip
        console.check_interrupt()
        ckpt = None
        test_seconds = round(time.perf_counter() - t0, 4)
        if is_zero:
            atomic_write_json(files.test, {"metrics": metrics, "test_seconds": test_seconds})
        after("test")
    else:
        saved = read_json(files.test)
        metrics, test_seconds = {k: float(v) for k, v in saved["metrics"].items()}, float(saved["test_seconds"])

    if order <= PHASES.index("score"):
        console.where["at"] = f"{where} (score)"
        t0 = time.perf_counter()
        trainer.predict(model, datamodule=datamodule, return_predictions=False, ckpt_path=ckpt)
        console.check_interrupt()
        score_seconds = round(time.perf_counter() - t0, 4)
        if is_zero:
            atomic_write_json(files.score, {"score_seconds": score_seconds})
        after("score")
    else:
        score_seconds = float(read_json(files.score)["score_seconds"]) if is_zero else 0.0

    use_sharded = sharded and selecting and trainer.world_size > 1 and isinstance(query, SHARDED)
    # rank 0 needs the whole pool's probabilities (pool predictions) and, when it selects alone, the embeddings
    rows = read_score_shards(files.scores, keys=("probs",) if use_sharded else KEYS[1:]) if is_zero else None
    select_seconds = 0.0
    selected = torch.empty(0, dtype=torch.long)
    if selecting:
        assert budget is not None
        if order <= PHASES.index("select"):
            console.where["at"] = f"{where} (select)"
            if use_sharded:
                t0 = time.perf_counter()
                picked = select_sharded_part(files.scores, pool, query, budget, seed)
                secs = round(time.perf_counter() - t0, 4)
                if is_zero:
                    atomic_write_json(files.selection, {"selected": picked.tolist(), "select_seconds": secs,
                                                        "ranks": trainer.world_size})  # fmt: skip
                wait_until(files.selection.is_file, f"rank 0's selection ({files.selection})")
            elif is_zero:
                assert rows is not None
                picked, _, secs = select_batch(rows, pool, query, budget, seed, oracle)
                atomic_write_json(files.selection, {"selected": picked.tolist(), "select_seconds": round(secs, 4)})
            else:
                wait_until(files.selection.is_file, f"rank 0's selection ({files.selection})")
            after("select")
        saved = read_json(files.selection)
        selected = torch.tensor(saved["selected"], dtype=torch.long)
        select_seconds = float(saved["select_seconds"])
    console.where["at"] = where
    return RoundOutputs(
        metrics=metrics,
        train_seconds=train_seconds,
        test_seconds=test_seconds,
        score_seconds=score_seconds,
        select_seconds=select_seconds,
        selected=selected,
        pool_predictions=predicted_classes(rows, pool.size) if rows is not None else None,
    )


SHARDED = (Badge, Coreset)
"""Strategies whose selection runs on every rank's part of the pool (``run --sharded_selection true``)."""


def select_sharded_part(scores: Path, pool: LabelPool, query: QueryStrategy, budget: int, seed: int) -> Tensor:
    """Every rank: BADGE or coreset over its contiguous part of the pool, exact over all parts.

    Each rank reads only its part of the sorted pool from the score shards (memory ``O(N / world)``
    rows), the labeled and pending rows of all parts are gathered (they are few), and the strategy's
    sharded kernel (:mod:`lbench.strategies.sharded`) exchanges ``O(world + K + d)`` values per pick.
    Every rank returns the same picks. Must be called by every rank of the default process group.

    Raises:
        ConfigError: Non-finite scores on some rank, or a budget larger than the candidates (on every rank).
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    rows = read_score_shards(scores, rank, world)
    view = make_view(rows, pool)
    bad = torch.tensor([float(not all(bool(torch.isfinite(t).all()) for t in (view.probs, view.embeddings)
                                      if t is not None)), float(view.num_unlabeled)])  # fmt: skip
    dist.all_reduce(bad)
    if bad[0] > 0:
        raise ConfigError(f"query strategy {query.name!r} got non-finite probabilities or embeddings")
    if budget > bad[1]:
        raise ConfigError(f"budget {budget} is larger than the {int(bad[1])} candidates")
    gen = torch.Generator().manual_seed(seed)

    def gathered(t: Tensor | None) -> Tensor | None:
        parts: list[Any] = [None] * world
        dist.all_gather_object(parts, t if t is not None else torch.empty(0))
        out = torch.cat([p for p in parts if p.numel()]) if any(p.numel() for p in parts) else None
        return out

    if isinstance(query, Badge):
        pending_probs, pending_embeddings = gathered(view.pending_probs), gathered(view.pending_embeddings)
        return query.select_sharded(view.index, view.probs, view.embeddings, budget, gen, stream=False,
                                    pending_probs=pending_probs, pending_embeddings=pending_embeddings)  # fmt: skip
    centres = [t for t in (view.labeled_embeddings, view.pending_embeddings) if t is not None and t.numel()]
    labeled = gathered(torch.cat(centres) if centres else None)
    return query.select_sharded(view.index, view.embeddings, budget, gen, labeled_embeddings=labeled, stream=False)


def clear_work(work: Path, keep_from: int | None = None) -> None:
    """Remove the round work folders in ``work`` (those of rounds before ``keep_from``; all when None)."""
    if not work.is_dir():
        return
    if keep_from is None:
        shutil.rmtree(work, ignore_errors=True)
        return
    for p in work.iterdir():
        if p.name.startswith("round_") and p.name[6:].isdigit() and int(p.name[6:]) < keep_from:
            shutil.rmtree(p, ignore_errors=True)
