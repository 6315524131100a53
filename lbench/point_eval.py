"""Point evaluation: after the last round, fine-tune a model end to end on the labels an arm chose.

The paper selects with a cheap proxy (a head on cached embeddings) and evaluates the labeled set
it built by fine-tuning the large model once at the end. :class:`PointEvaluation` is that final
phase of ``lbench run`` (``--point_eval``): per arm and seed, a fresh copy of ``model`` (e.g. a
:class:`~lbench.modules.FineTuneClassifier`, with or without FlexMatch) is trained on images of
the final labeled set (:class:`~lbench.data.images.ImageDataModule`, the run's data set) and its
test and pool accuracy land in ``point_eval.jsonl`` beside the proxy's.
"""

from __future__ import annotations

import copy
from typing import Any

import lightning as L

from lbench.data.base import PoolDataset
from lbench.errors import ConfigError, check_positive_int
from lbench.pool import LabelPool

__all__ = ["PointEvaluation"]

_PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "64-true", "transformer-engine")


class PointEvaluation:
    """Fine-tune ``model`` on each arm's final labeled set and test it.

    Args:
        model: The model fine-tuned end to end (a fresh, seeded copy per arm and seed), e.g. a
            ``FineTuneClassifier`` with a trainable encoder; give it an ``ssl`` component to
            fine-tune with FlexMatch on the unlabeled rest of the pool.
        max_epochs: Training epochs (each at least ``samples_per_epoch`` labeled items).
        batch_size: Labeled images per training batch (FlexMatch adds ``uratio`` times as many
            unlabeled ones).
        eval_batch_size: Images per test and pool-scoring batch (None: ``4 * batch_size``).
        samples_per_epoch: Minimum labeled items per epoch (a small labeled set is cycled).
        augment: Train on weakly augmented images (random resized crop + flip).
        image_size: Resize every image to this square side before augmentation (None: keep
            the data set's size; the encoder resizes to its own input size anyway).
        num_workers: DataLoader worker processes.
        precision: Trainer precision (e.g. ``bf16-mixed`` on a GPU); None keeps the run's.
    """

    def __init__(
        self,
        model: L.LightningModule,
        max_epochs: int = 5,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        samples_per_epoch: int = 0,
        augment: bool = True,
        image_size: int | None = None,
        num_workers: int = 0,
        precision: str | None = None,
    ) -> None:
        if not isinstance(model, L.LightningModule):
            raise ConfigError(f"point_eval.model must be a LightningModule, got {type(model).__name__}")
        check_positive_int(max_epochs, "point_eval.max_epochs", ConfigError)
        check_positive_int(batch_size, "point_eval.batch_size", ConfigError)
        if eval_batch_size is not None:
            check_positive_int(eval_batch_size, "point_eval.eval_batch_size", ConfigError)
        if samples_per_epoch < 0 or num_workers < 0:
            raise ConfigError("point_eval.samples_per_epoch and point_eval.num_workers must be >= 0")
        if precision is not None and str(precision) not in _PRECISIONS:
            choices = ", ".join(_PRECISIONS)
            raise ConfigError(f"point_eval.precision must be one of {choices} or null, got {precision!r}")
        self.model = model
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.samples_per_epoch = samples_per_epoch
        self.augment = augment
        self.image_size = image_size
        self.num_workers = num_workers
        self.precision = precision

    def fresh_model(self) -> L.LightningModule:
        """A fresh copy of the untrained model (seed the global generators first)."""
        return copy.deepcopy(self.model)

    def datamodule(self, dataset: PoolDataset, pool: LabelPool, view_seed: int) -> L.LightningDataModule:
        """Images of ``dataset`` with the labels of ``pool`` (train), its test split, the whole pool (predict)."""
        from lbench.data.images import ImageDataModule

        dm = ImageDataModule(
            dataset,
            batch_size=self.batch_size,
            eval_batch_size=self.eval_batch_size,
            samples_per_epoch=self.samples_per_epoch,
            augment=self.augment,
            view_seed=view_seed,
            image_size=self.image_size,
            num_workers=self.num_workers,
        )
        dm.pool = pool
        return dm

    def trainer_kwargs(self, run_kwargs: dict[str, Any]) -> dict[str, Any]:
        """The run's Trainer arguments with this phase's epochs and precision."""
        kwargs = dict(run_kwargs)
        kwargs["max_epochs"] = self.max_epochs
        kwargs.pop("max_steps", None)
        if self.precision is not None:
            kwargs["precision"] = self.precision
        return kwargs

    @property
    def ssl_name(self) -> str | None:
        """The model's semi-supervised component (``FlexMatch``, ``FixMatch``), or None."""
        ssl = getattr(self.model, "ssl", None)
        if ssl is None:
            return None
        return "FlexMatch" if getattr(ssl, "flexible", True) else "FixMatch"

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{k}={getattr(self, k)!r}"
            for k in ("max_epochs", "batch_size", "samples_per_epoch", "augment", "image_size", "precision")
        )
        return f"PointEvaluation({type(self.model).__name__}, {fields})"
