"""ActiveLoop: the callback that turns ``trainer.predict`` over the pool into a selection.

It collects ``(index, probs, embeddings)`` from every predict batch, gathers the rows of all
ranks onto rank 0 (padding uneven shards; the other ranks keep only their own), runs the query
strategy on rank 0 and broadcasts the chosen pool indices, so every rank ends with the same
``selected`` tensor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from typing_extensions import override

from lbench.errors import ConfigError
from lbench.oracle import Oracle
from lbench.pool import LabelPool
from lbench.scores import sort_unique_rows
from lbench.strategies.base import PoolView, QueryStrategy

__all__ = ["ActiveLoop", "gather_rows", "make_view", "predicted_classes", "select_batch"]


def gather_rows(trainer: L.Trainer, rows: dict[str, Tensor]) -> dict[str, Tensor]:
    """Gather per-rank rows of possibly different lengths onto rank 0 (pads with ``index = -1``).

    Only rank 0 receives the other ranks' rows (``torch.distributed.gather``), so a rank other than
    0 never holds more than its own ``N / world`` rows; it gets its own rows back.

    Args:
        trainer: A trainer inside a live strategy.
        rows: Tensors with the same first dimension, including ``index``.

    Returns:
        On rank 0 the rows of all ranks, elsewhere this rank's; padding dropped, sorted by ``index``,
        each index once.
    """
    if trainer.world_size > 1:
        n = torch.tensor([len(rows["index"])], device=rows["index"].device)
        m = int(trainer.strategy.all_gather(n).max())
        zero = trainer.is_global_zero
        gathered = {}
        for k, v in rows.items():
            pad = v.new_full((m - len(v), *v.shape[1:]), -1 if k == "index" else 0)
            t = torch.cat([v, pad]).contiguous()
            bucket = [torch.empty_like(t) for _ in range(trainer.world_size)] if zero else None
            dist.gather(t, bucket, dst=0)
            if bucket is not None:
                gathered[k] = torch.cat(bucket)
        if zero:
            keep = gathered["index"] >= 0
            rows = {k: v[keep] for k, v in gathered.items()}
    return sort_unique_rows(rows)


def predicted_classes(rows: dict[str, Tensor], pool_size: int) -> Tensor:
    """``[pool_size]`` predicted class of every scored pool item (``-1`` for an item not scored)."""
    out = torch.full((pool_size,), -1, dtype=torch.long)
    out[rows["index"].long().cpu()] = rows["probs"].argmax(1).cpu()
    return out


def select_batch(
    rows: dict[str, Tensor],
    pool: LabelPool,
    query: QueryStrategy,
    budget: int,
    seed: int,
    oracle: Oracle | Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, PoolView, float]:
    """Run ``query`` on the scored pool rows: the one selection path of ``run``, ``select`` and ActiveLoop.

    Args:
        rows: ``index``, ``probs`` (and ``embeddings``) of the pool's items, sorted by index.
        pool: The label pool (labeled, pending and skipped items).
        query: The strategy.
        budget: Items to select.
        seed: Seed of the strategy's generator.
        oracle: Answers an interactive strategy's requests inside the batch (simulated runs).

    Returns:
        The chosen pool indices (CPU), the :class:`PoolView` the strategy saw, and its seconds.
    """
    t0 = time.perf_counter()
    view = make_view(rows, pool)
    gen = torch.Generator().manual_seed(seed)
    if getattr(query, "interactive", False):
        if oracle is None:
            raise query.needs_oracle_error()
        answer = oracle.query if isinstance(oracle, Oracle) else oracle
        picked = query.select(view, budget, generator=gen, oracle=answer).cpu()
    else:
        picked = query.select(view, budget, generator=gen).cpu()
    return torch.as_tensor(picked, dtype=torch.long), view, time.perf_counter() - t0


class ActiveLoop(Callback):
    """Select the next batch at the end of ``trainer.predict`` over the pool.

    The predict step must return a dict with ``index`` (global pool indices), ``probs`` and,
    for strategies that need them, ``embeddings``. The pool is read from ``pool`` or the
    DataModule's ``pool`` attribute.

    Args:
        query: The query strategy.
        budget: Number of items to select; None scores the pool without selecting (the last round).
        seed: Seed of the strategy's generator (the same on every rank).
        pool: The label pool (None = ``trainer.datamodule.pool``).
        oracle: What answers an interactive strategy's label requests inside the batch (simulated
            runs): an :class:`~lbench.oracle.Oracle` or a callable with ``Oracle.query``'s signature.
            Handed to ``query.select`` only when ``query.interactive``; such a strategy with a budget
            and no oracle is refused here, before any prediction.

    Attributes:
        selected: ``[budget]`` chosen pool indices (on CPU) after predict, on every rank.
        view: The :class:`PoolView` the strategy saw (rank 0 only; None elsewhere).
        select_seconds: Time the strategy took.
        pool_predictions: ``[pool size]`` predicted class of every pool item (rank 0 only): what
            the pool accuracy of simulated runs is computed from, never shown to a strategy.
    """

    def __init__(
        self,
        query: QueryStrategy,
        budget: int | None,
        seed: int = 0,
        pool: LabelPool | None = None,
        oracle: Oracle | Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        if getattr(query, "interactive", False) and budget is not None and oracle is None:
            raise query.needs_oracle_error()
        self.query = query
        self.budget = budget
        self.seed = seed
        self.pool = pool
        self.oracle = oracle
        self.selected: Tensor | None = None
        self.view: PoolView | None = None
        self.select_seconds = 0.0
        self.pool_predictions: Tensor | None = None
        self._rows: list[dict[str, Tensor]] = []

    @override
    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._rows, self.selected, self.view = [], None, None

    @override
    def on_predict_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not isinstance(outputs, dict) or "index" not in outputs or "probs" not in outputs:
            raise ConfigError("ActiveLoop needs predict_step to return a dict with 'index' and 'probs'")
        self._rows.append({k: outputs[k].detach() for k in ("index", "probs", "embeddings") if k in outputs})

    @override
    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pool = self.pool if self.pool is not None else getattr(trainer.datamodule, "pool", None)
        if pool is None:
            raise ConfigError("ActiveLoop needs a LabelPool (pass pool= or give the DataModule a pool)")
        keys = self._rows[0].keys() if self._rows else ("index", "probs")
        rows = {k: torch.cat([r[k] for r in self._rows]) for k in keys}
        rows = gather_rows(trainer, rows)
        self._rows = []
        picked = torch.empty(0, dtype=torch.long)
        if trainer.is_global_zero:
            self.pool_predictions = predicted_classes(rows, pool.size)
        if trainer.is_global_zero and self.budget is not None:
            picked, self.view, self.select_seconds = select_batch(
                rows, pool, self.query, self.budget, self.seed, self.oracle
            )
        picked = trainer.strategy.broadcast(picked, src=0)
        self.selected = torch.as_tensor(picked, dtype=torch.long).cpu()


def make_view(rows: dict[str, Tensor], pool: LabelPool) -> PoolView:
    """Split gathered pool rows into the candidates, the labeled part and the pending part.

    Candidates are the unlabeled items not already requested from a person (``pool.pending``) nor
    answered ``skip``/``unsure`` (``pool.skipped``, left out of every part).
    The pending items (unlabeled, requested) go to ``pending_*``, so diversity strategies can
    count them as already chosen; with nothing pending those tensors are empty.
    """
    index = rows["index"].long()
    labels = pool.labels.to(index.device)[index]
    lab = labels >= 0
    pend = torch.zeros_like(lab)
    if pool.pending:
        pend = ~lab & torch.isin(index, torch.tensor(pool.pending, dtype=torch.long, device=index.device))
    cand = ~lab & ~pend
    skipped = getattr(pool, "skipped", None)
    if skipped:  # answered "skip" or "unsure" by a person: never proposed again, not chosen either
        cand &= ~torch.isin(index, torch.tensor(sorted(skipped), dtype=torch.long, device=index.device))
    emb = rows.get("embeddings")
    probs = rows["probs"]
    return PoolView(
        index=index[cand],
        probs=probs[cand].float(),
        embeddings=None if emb is None else emb[cand].float(),
        labeled_index=index[lab],
        labeled_labels=labels[lab],
        labeled_embeddings=None if emb is None else emb[lab].float(),
        labeled_probs=probs[lab].float(),
        pending_index=index[pend],
        pending_embeddings=None if emb is None else emb[pend].float(),
        pending_probs=probs[pend].float(),
    )
