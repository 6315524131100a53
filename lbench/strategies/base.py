"""The query-strategy contract: :class:`PoolView` in, pool indices out.

A strategy is a pure function of tensors. It sees the model's view of the unlabeled pool
(probabilities, optionally embeddings) and, where it needs them, the labeled items and the
labels the pool already holds, and the items requested from a person but not yet labeled
(pending: diversity strategies count them as already chosen).

A strategy never holds an oracle. An *interactive* strategy (``interactive = True``, e.g. GALAXY)
is handed a label callback for one ``select`` call (simulated runs only): it reveals the label of
each item right after picking it, before the next pick. Without a callback (a person labels the
batch, ``lbench select``) an interactive strategy refuses to run.
"""

from __future__ import annotations

import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lbench.errors import BudgetError, ConfigError, check_positive_int

__all__ = ["LabelCallback", "PoolView", "QueryStrategy"]

LabelCallback = Callable[[Tensor], Tensor]
"""``[m]`` int64 global pool indices -> ``[m]`` int64 labels (``Oracle.query`` has this signature)."""


@dataclass(frozen=True)
class PoolView:
    """What a strategy may look at.

    Attributes:
        index: ``[n_u]`` int64 global pool indices of the unlabeled candidates.
        probs: ``[n_u, K]`` predicted class probabilities of the candidates.
        embeddings: ``[n_u, d]`` penultimate-layer (or cached) embeddings of the candidates.
        labeled_index: ``[n_l]`` global pool indices of the labeled items.
        labeled_labels: ``[n_l]`` int64 labels the pool holds for them.
        labeled_embeddings: ``[n_l, d]`` their embeddings.
        labeled_probs: ``[n_l, K]`` the model's probabilities on them.
        pending_index: ``[n_p]`` global pool indices of the items already requested from a person
            but not yet labeled (``LabelPool.pending``): in flight, so neither candidates nor labeled.
            Diversity strategies (BADGE, Coreset, TypiClust, BAIT) treat them as already chosen;
            the others ignore them. None or empty: nothing is pending.
        pending_embeddings: ``[n_p, d]`` their embeddings.
        pending_probs: ``[n_p, K]`` the model's probabilities on them.
    """

    index: Tensor
    probs: Tensor
    embeddings: Tensor | None = None
    labeled_index: Tensor | None = None
    labeled_labels: Tensor | None = None
    labeled_embeddings: Tensor | None = None
    labeled_probs: Tensor | None = None
    pending_index: Tensor | None = None
    pending_embeddings: Tensor | None = None
    pending_probs: Tensor | None = None

    def __post_init__(self) -> None:
        n = self.index.shape[0]
        if self.index.dim() != 1:
            raise ValueError(f"PoolView.index must be 1-D, got shape {tuple(self.index.shape)}")
        if self.probs.dim() != 2 or self.probs.shape[0] != n:
            raise ValueError(f"PoolView.probs must be [{n}, K], got {tuple(self.probs.shape)}")
        if self.embeddings is not None and (self.embeddings.dim() != 2 or self.embeddings.shape[0] != n):
            raise ValueError(f"PoolView.embeddings must be [{n}, d], got {tuple(self.embeddings.shape)}")
        if self.labeled_index is not None:
            m = self.labeled_index.shape[0]
            for name in ("labeled_labels", "labeled_embeddings", "labeled_probs"):
                t = getattr(self, name)
                if t is not None and t.shape[0] != m:
                    raise ValueError(f"PoolView.{name} must have {m} rows, got {t.shape[0]}")
        if self.pending_index is not None:
            if self.pending_index.dim() != 1:
                raise ValueError(f"PoolView.pending_index must be 1-D, got shape {tuple(self.pending_index.shape)}")
            m = self.pending_index.shape[0]
            k = self.probs.shape[1]
            if self.pending_probs is not None and tuple(self.pending_probs.shape) != (m, k):
                raise ValueError(f"PoolView.pending_probs must be [{m}, {k}], got {tuple(self.pending_probs.shape)}")
            t = self.pending_embeddings
            if t is not None and (t.dim() != 2 or t.shape[0] != m):
                raise ValueError(f"PoolView.pending_embeddings must be [{m}, d], got {tuple(t.shape)}")
        elif self.pending_embeddings is not None or self.pending_probs is not None:
            raise ValueError("PoolView.pending_embeddings and pending_probs need pending_index")

    @property
    def num_pending(self) -> int:
        """Number of pending items (requested from a person, not yet labeled)."""
        return 0 if self.pending_index is None else int(self.pending_index.shape[0])

    @property
    def num_unlabeled(self) -> int:
        """Number of candidates."""
        return int(self.index.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes K."""
        return int(self.probs.shape[1])

    @property
    def device(self) -> torch.device:
        """Device of the candidate tensors."""
        return self.probs.device


class QueryStrategy(ABC):
    """Base class of query strategies (random, margin, BADGE, ...).

    Subclasses take their hyper-parameters as typed keyword arguments of ``__init__`` (the
    config schema) and implement :meth:`_select`, which returns row positions into the view.
    :meth:`select` validates the budget and maps positions to global pool indices.

    Attributes:
        requires_embeddings: The strategy reads ``view.embeddings``.
        requires_labeled: The strategy reads the labeled part of the view.
        requires_model: The strategy ranks items by a trained model's outputs (so ``select``
            refuses to run it without a checkpoint); False for cold-start strategies.
        interactive: The strategy asks for the label of each item it picks before picking the
            next (``select(..., oracle=callback)``); it refuses to run without a callback, and
            its :meth:`_select` takes the callback as the keyword argument ``oracle``.
        batch_alternative: For an interactive strategy, the class name of its batch-mode
            variant, named in the refusal.
    """

    requires_embeddings: bool = False
    requires_labeled: bool = False
    requires_model: bool = True
    interactive: bool = False
    batch_alternative: str | None = None

    @property
    def name(self) -> str:
        """Arm name used in results: the class name in snake case (``Margin`` -> ``margin``)."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()

    def select(
        self,
        view: PoolView,
        budget: int,
        generator: torch.Generator | None = None,
        oracle: LabelCallback | None = None,
    ) -> Tensor:
        """Choose ``budget`` distinct unlabeled items.

        Args:
            view: The pool as the model sees it.
            budget: How many items to choose (> 0).
            generator: Source of randomness; the result is deterministic given its seed.
            oracle: Label callback for interactive strategies (``[m]`` global pool indices ->
                ``[m]`` labels), called once per pick; ignored by the others.

        Returns:
            ``[budget]`` int64 global pool indices, a subset of ``view.index`` (all of it,
            with a warning, when fewer than ``budget`` candidates are left).

        Raises:
            BudgetError: ``budget`` is not positive.
            ConfigError: The view lacks tensors the strategy needs, or holds NaN or infinite values,
                or the strategy is interactive and ``oracle`` is None.
        """
        check_positive_int(budget, "budget", BudgetError)
        if self.interactive and oracle is None:
            raise self.needs_oracle_error()
        if self.requires_embeddings and view.embeddings is None:
            raise ConfigError(f"query strategy {self.name!r} needs embeddings, but the pool view has none")
        if self.requires_labeled and (view.labeled_index is None or view.labeled_labels is None):
            raise ConfigError(f"query strategy {self.name!r} needs the labeled set, but the pool view has none")
        self._check_finite(view)
        n_u = view.num_unlabeled
        if n_u == 0:
            warnings.warn("no unlabeled items are left; nothing selected", stacklevel=2)
            return view.index.new_empty(0)
        if budget > n_u:
            warnings.warn(
                f"budget {budget} exceeds the {n_u} unlabeled items left; selecting all of them", stacklevel=2
            )
            budget = n_u
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        if self.interactive:
            positions = self._select(view, budget, generator, oracle=oracle)  # type: ignore[call-arg]
        else:
            positions = self._select(view, budget, generator)
        return view.index[positions.to(device=view.index.device, dtype=torch.long)]

    def needs_oracle_error(self) -> ConfigError:
        """The one-line refusal of an interactive strategy that has no label callback."""
        alt = f"; use {self.batch_alternative} (batch mode) instead" if self.batch_alternative else ""
        return ConfigError(
            f"query strategy {self.name!r} is interactive: it needs the label of each pick before the next, "
            f"which only a simulated oracle gives, not a person labeling a batch{alt}"
        )

    def _check_finite(self, view: PoolView) -> None:
        """Refuse NaN or infinite probabilities or embeddings (a damaged model or cache) in one line."""
        fields = ("probs", "embeddings", "labeled_probs", "labeled_embeddings", "pending_probs", "pending_embeddings")
        for field in fields:
            t = getattr(view, field)
            if t is None or not t.is_floating_point():
                continue
            bad = ~torch.isfinite(t)
            if bool(bad.any()):
                rows = int(bad.reshape(len(t), -1).any(1).sum())
                raise ConfigError(
                    f"query strategy {self.name!r} refuses non-finite values (NaN or inf) in view.{field} "
                    f"({rows} of {len(t)} rows): the model's outputs or the cached embeddings are damaged; "
                    "retrain, or delete the embedding cache folder to rebuild it"
                )

    def _pending_rows(self, view: PoolView, *fields: str) -> tuple[Tensor, ...] | None:
        """The pending items' ``fields`` (``"embeddings"``, ``"probs"``), or None when nothing is pending.

        Raises:
            ConfigError: Items are pending but the view lacks one of those fields.
        """
        if view.num_pending == 0:
            return None
        out = []
        for field in fields:
            t = getattr(view, f"pending_{field}")
            if t is None:
                raise ConfigError(
                    f"query strategy {self.name!r} needs the {field} of the pending items (requested, not yet labeled)"
                )
            out.append(t)
        return tuple(out)

    @abstractmethod
    def _select(self, view: PoolView, budget: int, generator: torch.Generator) -> Tensor:
        """Return ``budget`` distinct row positions into ``view`` (0 < budget <= n_u)."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"
