"""FlexMatch (Zhang et al., 2021) with curriculum pseudo-labeling; FixMatch is ``flexible=False``.

One training step on a labeled batch and an unlabeled batch (weak and strong view of each item):

* ``sup_loss = CE(logits_lb, y_lb)``;
* ``p = softmax(logits_w / temperature)`` (detached), ``pseudo = argmax p``, ``conf = max p``;
* class-wise thresholds ``T_c = p_cutoff * M(beta_c)`` with the convex mapping ``M(x) = x / (2 - x)``;
  ``mask = conf >= T_pseudo`` (FixMatch: ``T_c = p_cutoff`` for every class);
* ``unsup_loss = mean(CE(logits_s, pseudo) * mask)`` over the whole unlabeled batch (hard labels);
* ``loss = sup_loss + lambda_u * unsup_loss``.

The learning status ``beta`` comes from a per-item table ``selected_label`` indexed by the
global pool index (``-1`` = unused): an item's entry becomes its pseudo-label whenever its
confidence reaches ``p_cutoff``. With ``sigma_c`` the number of entries equal to ``c`` and
``N_unused`` the number of ``-1`` entries,

* with warm-up: ``beta_c = sigma_c / max(max_k sigma_k, N_unused)``;
* without: ``beta_c = sigma_c / max_k sigma_k``;

and ``beta = 0`` while the denominator is 0 (nothing selected yet), so thresholds start at 0, as
in USB (``semilearn/algorithms/flexmatch``), whose initial ``classwise_acc`` is zeros. As in
USB, the mask of a step uses the table as it was before that step; the table is updated after.
One difference: USB skips recomputing ``beta`` when every entry holds the same class; here the
paper's formula is applied there too (that class gets ``beta = 1``).

The table has the pool's size, so items the unlabeled loader never yields stay ``-1`` and count
as unused; the unlabeled loader should therefore cover the pool (USB includes the labeled items
in the unlabeled set), or the warm-up never ends.

Under DDP every rank must see the same table: :meth:`FlexMatch.update` all-gathers
``(index, pseudo-label or -1)`` of the step through a callable you pass (a LightningModule's
``self.all_gather``), so every rank applies the same writes in the same order. The table is a
plain tensor attribute, not a module buffer: DDP re-broadcasts buffers from rank 0 on every
forward, which would hide a desync and cost a pool-sized broadcast per step. It is saved with
:meth:`FlexMatch.state_dict` (a CPU tensor and ints, loadable with ``weights_only=True``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from lbench.errors import ConfigError

__all__ = ["FlexMatch", "FlexMatchOutput", "AllGather"]

AllGather = Callable[[Tensor], Tensor]
"""``all_gather(t)``: ``[world, *t.shape]`` under DDP, or ``t`` unchanged in one process."""


class FlexMatchOutput(NamedTuple):
    """What one FlexMatch step computed.

    Attributes:
        loss: ``sup_loss + lambda_u * unsup_loss`` (differentiable).
        sup_loss: Cross-entropy on the labeled batch.
        unsup_loss: Masked cross-entropy of the strong view against the hard pseudo-labels.
        mask: ``[B_u]`` bool, the unlabeled items whose pseudo-label was used.
        pseudo_label: ``[B_u]`` long, argmax of the weak view.
        confidence: ``[B_u]`` float, max probability of the weak view.
    """

    loss: Tensor
    sup_loss: Tensor
    unsup_loss: Tensor
    mask: Tensor
    pseudo_label: Tensor
    confidence: Tensor


class FlexMatch:
    """FlexMatch's loss and its per-item state (FixMatch with ``flexible=False``).

    Pass it to a task module as ``ssl=FlexMatch(...)``; the module fills ``num_classes`` (and
    ``pool_size`` from a DataModule that has one) through :meth:`configure`.

    Args:
        num_classes: Number of classes (None = filled by the module).
        pool_size: Number of pool items, i.e. the size of the table indexed by global pool index
            (None = from the DataModule's ``pool_size``).
        p_cutoff: The fixed confidence threshold ``tau`` (FixMatch's threshold, FlexMatch's
            ceiling, and the confidence at which an item's table entry is written).
        lambda_u: Weight of the unlabeled loss.
        uratio: Unlabeled items per labeled item in a batch (read by the data side that builds
            the unlabeled loader, e.g. ``EmbeddingDataModule``; the loss itself does not need it).
        flexible: Class-wise flexible thresholds (FlexMatch); False gives FixMatch.
        warmup: Threshold warm-up: unused items count in the normaliser of ``beta``.
        temperature: Temperature of the weak-view softmax that gives confidences (1.0 as in the
            paper). Pseudo-labels are hard (argmax), whatever the temperature.

    Example:
        >>> fm = FlexMatch(num_classes=3, pool_size=4, p_cutoff=0.9)
        >>> fm.update(torch.tensor([0, 1]), torch.tensor([2, 2]), torch.tensor([True, False]))
        >>> fm.selected_label.tolist()
        [2, -1, -1, -1]
        >>> fm.class_status().tolist()  # warm-up: 1 used item of class 2 vs 3 unused
        [0.0, 0.0, 0.3333333432674408]
    """

    state_key = "ssl"

    def __init__(
        self,
        num_classes: int | None = None,
        pool_size: int | None = None,
        p_cutoff: float = 0.95,
        lambda_u: float = 1.0,
        uratio: int = 7,
        flexible: bool = True,
        warmup: bool = True,
        temperature: float = 1.0,
    ) -> None:
        if num_classes is not None and num_classes < 2:
            raise ConfigError(f"FlexMatch needs num_classes >= 2 (or null), got {num_classes}")
        if pool_size is not None and pool_size < 1:
            raise ConfigError(f"FlexMatch needs pool_size >= 1 (or null), got {pool_size}")
        if not 0.0 < p_cutoff <= 1.0:
            raise ConfigError(f"FlexMatch needs 0 < p_cutoff <= 1, got {p_cutoff}")
        if lambda_u < 0 or uratio < 1 or temperature <= 0:
            raise ConfigError("FlexMatch needs lambda_u >= 0, uratio >= 1 and temperature > 0")
        self.num_classes = num_classes
        self.pool_size = pool_size
        self.p_cutoff = p_cutoff
        self.lambda_u = lambda_u
        self.uratio = uratio
        self.flexible = flexible
        self.warmup = warmup
        self.temperature = temperature
        self.selected_label: Tensor | None = None
        if pool_size is not None:
            self.reset()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config()["init_args"].items())
        return f"{type(self).__name__}({args})"

    # -- configuration -----------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """``{"class_path", "init_args"}`` of this object: plain values, safe in checkpoint hparams."""
        init_args = {
            "num_classes": self.num_classes,
            "pool_size": self.pool_size,
            "p_cutoff": self.p_cutoff,
            "lambda_u": self.lambda_u,
            "uratio": self.uratio,
            "flexible": self.flexible,
            "warmup": self.warmup,
            "temperature": self.temperature,
        }
        return {"class_path": f"{type(self).__module__}.{type(self).__qualname__}", "init_args": init_args}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FlexMatch:
        """Rebuild from :meth:`config` (as stored in checkpoint hparams).

        The class path must name an already imported subclass of FlexMatch; nothing is imported.

        Raises:
            ConfigError: The mapping is not a FlexMatch config.
        """
        class_path = str(config.get("class_path", f"{cls.__module__}.{cls.__qualname__}"))
        module, _, name = class_path.rpartition(".")
        target = getattr(sys.modules.get(module), name, None) if module else None
        if target is None and name == "FlexMatch":
            target = FlexMatch
        if not (isinstance(target, type) and issubclass(target, FlexMatch)):
            raise ConfigError(f"ssl must be a FlexMatch (or an imported subclass), got class_path {class_path!r}")
        return target(**dict(config.get("init_args", {})))

    def configure(self, num_classes: int | None = None, pool_size: int | None = None) -> None:
        """Fill ``num_classes``/``pool_size`` left as None and allocate the table if needed.

        Args:
            num_classes: The module's number of classes.
            pool_size: The DataModule's pool size (None when it has none).

        Raises:
            ConfigError: A given value contradicts one set already.
        """
        for name, value in (("num_classes", num_classes), ("pool_size", pool_size)):
            if value is None:
                continue
            current = getattr(self, name)
            if current is None:
                setattr(self, name, int(value))
            elif current != value:
                raise ConfigError(
                    f"FlexMatch has {name}={current} but the model, data or checkpoint give {value}: "
                    "leave it null or make them agree"
                )
        if self.selected_label is None and self.pool_size is not None:
            self.reset()

    def reset(self) -> None:
        """Forget every pseudo-label (start of an active-learning round): the whole table to -1."""
        if self.pool_size is None:
            raise ConfigError(
                "FlexMatch needs pool_size (the number of pool items; its table is indexed by global pool "
                "index): set ssl.init_args.pool_size or use a DataModule with a pool_size attribute"
            )
        device = self.selected_label.device if self.selected_label is not None else None
        self.selected_label = torch.full((self.pool_size,), -1, dtype=torch.long, device=device)

    def _table(self, device: torch.device | None = None) -> Tensor:
        if self.selected_label is None:
            self.reset()
        assert self.selected_label is not None
        if device is not None and self.selected_label.device != device:
            self.selected_label = self.selected_label.to(device)
        return self.selected_label

    def _classes(self) -> int:
        if self.num_classes is None:
            raise ConfigError("FlexMatch needs num_classes: set it or let the model fill it (configure)")
        return self.num_classes

    # -- thresholds --------------------------------------------------------------------------
    def class_status(self, device: torch.device | None = None) -> Tensor:
        """``beta``: ``[num_classes]`` float learning status of each class, from the table."""
        k = self._classes()
        counts = torch.bincount(self._table(device) + 1, minlength=k + 1)  # counts[0]: unused (-1)
        sigma = counts[1:]
        denom = sigma.max()
        if self.warmup:
            denom = torch.maximum(denom, counts[0])
        return sigma.float() / denom.clamp_min(1).float()  # nothing selected yet: beta = 0

    def thresholds(self, device: torch.device | None = None) -> Tensor:
        """``[num_classes]`` confidence thresholds: ``p_cutoff * beta / (2 - beta)``, or ``p_cutoff`` (FixMatch)."""
        if not self.flexible:
            return torch.full((self._classes(),), self.p_cutoff, device=device)
        beta = self.class_status(device)
        return self.p_cutoff * beta / (2.0 - beta)

    def pseudo_labels(self, logits_w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Hard pseudo-labels of the weak view and which of them pass their class threshold.

        Args:
            logits_w: ``[B_u, K]`` logits of the weak view (detached here).

        Returns:
            ``(mask, pseudo_label, confidence)``: ``[B_u]`` bool, long, float.
        """
        probs = torch.softmax(logits_w.detach().float() / self.temperature, dim=-1)
        confidence, pseudo = probs.max(dim=-1)
        mask = confidence >= self.thresholds(logits_w.device)[pseudo]
        return mask, pseudo, confidence

    # -- state update ------------------------------------------------------------------------
    @torch.no_grad()
    def update(
        self, index: Tensor, pseudo_label: Tensor, confident: Tensor, all_gather: AllGather | None = None
    ) -> None:
        """Write the confident pseudo-labels of a step (of every rank) into the table.

        Args:
            index: ``[B_u]`` global pool indices of this rank's unlabeled items.
            pseudo_label: ``[B_u]`` their pseudo-labels.
            confident: ``[B_u]`` bool, confidence >= ``p_cutoff``.
            all_gather: The collective (e.g. ``LightningModule.all_gather``); every rank must
                call :meth:`update` the same number of times. None in one process.

        Raises:
            ConfigError: An index outside ``[0, pool_size)``.
        """
        table = self._table(index.device)
        rows = torch.stack([index.long(), torch.where(confident, pseudo_label.long(), -1)])  # [2, B]
        if all_gather is not None:
            # per-rank batch sizes may differ (a last partial batch): pad with index -1 first
            sizes = all_gather(torch.tensor([rows.shape[1]], device=rows.device)).reshape(-1)
            pad = int(sizes.max()) - rows.shape[1]
            if pad:
                rows = torch.cat([rows, rows.new_full((2, pad), -1)], dim=1)
            rows = all_gather(rows).reshape(-1, 2, rows.shape[1]).permute(1, 0, 2).reshape(2, -1)
        idx, lab = rows[0], rows[1]
        keep = (idx >= 0) & (lab >= 0)
        idx, lab = idx[keep], lab[keep]
        if idx.numel() and int(idx.max()) >= table.numel():
            raise ConfigError(
                f"unlabeled index {int(idx.max())} is outside the FlexMatch table of {table.numel()} pool items: "
                "batches must carry global pool indices and pool_size must be the pool's size"
            )
        table[idx] = lab  # same writes in the same order on every rank

    def step(
        self,
        logits_lb: Tensor,
        y_lb: Tensor,
        logits_w: Tensor,
        logits_s: Tensor,
        index_ulb: Tensor,
        all_gather: AllGather | None = None,
    ) -> FlexMatchOutput:
        """One training step: the loss (mask from the current table), then the table update.

        Args:
            logits_lb: ``[B, K]`` logits of the labeled items.
            y_lb: ``[B]`` their labels.
            logits_w: ``[B_u, K]`` logits of the weak view of the unlabeled items.
            logits_s: ``[B_u, K]`` logits of their strong view.
            index_ulb: ``[B_u]`` global pool indices of the unlabeled items.
            all_gather: See :meth:`update`.

        Returns:
            The loss and its parts.
        """
        sup_loss = F.cross_entropy(logits_lb, y_lb)
        mask, pseudo, confidence = self.pseudo_labels(logits_w)
        per_item = F.cross_entropy(logits_s, pseudo, reduction="none")
        unsup_loss = (per_item * mask.to(per_item.dtype)).mean()
        self.update(index_ulb, pseudo, confidence >= self.p_cutoff, all_gather)
        return FlexMatchOutput(sup_loss + self.lambda_u * unsup_loss, sup_loss, unsup_loss, mask, pseudo, confidence)

    # -- checkpoint ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The table (CPU long tensor) and the sizes: tensors and ints only."""
        table = self._table() if self.pool_size is not None or self.selected_label is not None else None
        return {
            "selected_label": None if table is None else table.detach().cpu().clone(),
            "num_classes": self.num_classes,
            "pool_size": self.pool_size,
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the table saved by :meth:`state_dict`.

        Raises:
            ConfigError: The saved sizes differ from this object's.
        """
        table = state_dict.get("selected_label")
        k = state_dict.get("num_classes")
        self.configure(num_classes=k, pool_size=None if table is None else len(table))
        if table is None:
            return
        table = torch.as_tensor(table, dtype=torch.long)
        if table.ndim != 1 or (table.numel() and (int(table.min()) < -1 or int(table.max()) >= self._classes())):
            raise ConfigError("the saved FlexMatch table is not a 1-d tensor of labels in [-1, num_classes)")
        device = self.selected_label.device if self.selected_label is not None else None
        self.selected_label = table.clone().to(device)
