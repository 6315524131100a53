"""EmbeddingCache: find, complete or build the store of a split under an encoder and a view recipe."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from lbench.cache.build import BuildPlan, ChunkBatches, ChunkLedger, EmbedModule, StoreWriter
from lbench.cache.files import create, open_array
from lbench.cache.meta import FORMAT, Meta, fingerprint_key
from lbench.cache.store import Store
from lbench.console import LineProgressBar, is_terminal
from lbench.distributed import launched_rank, wait_until
from lbench.encoders.base import Encoder
from lbench.errors import CacheError
from lbench.locks import locked_dir
from lbench.views import ViewRecipe

__all__ = ["EmbeddingCache", "cache_fingerprint", "view_stem"]

#: Above this many values, view-0 statistics are accumulated chunk by chunk in float64 instead
#: of on one float32 copy (the copy reproduces the numbers EmbeddingDataModule computed before).
EXACT_STATS_LIMIT = 1 << 28


def cache_fingerprint(split: Any, encoder: Encoder, precision: str = "32-true") -> dict[str, Any]:
    """Everything that determines the cached embeddings of every view (views add their own spec)."""
    return {
        "format": FORMAT,
        "split": {**split.fingerprint, "name": split.name, "n": len(split), "content": split.content_hash},
        "encoder": encoder.fingerprint(),
        "precision": precision,
    }


def view_stem(views: ViewRecipe, name: str) -> str:
    """File stem of a view: ``plain``, or its name and a hash of its spec (``weak0-1a2b3c4d``)."""
    return "plain" if name == "plain" else f"{name}-{fingerprint_key(views.view_spec(name), 8)}"


def _accelerator(device: str) -> tuple[str, int | list[int]]:
    if device == "auto":
        return ("cuda" if torch.cuda.is_available() else "cpu"), 1
    d = torch.device(device)
    return d.type, ([d.index] if d.index is not None else 1)


def _barrier(trainer: L.Trainer | None) -> None:
    if trainer is not None:
        trainer.strategy.barrier("lbench-cache")


def view_stats(meta: Meta) -> dict[str, list[float]]:
    """Per-dimension mean and std (float32) of the plain view, as ``EmbeddingDataModule`` computes them."""
    array = open_array(meta.path("plain"), (meta.items, meta.dim))
    if meta.items * meta.dim <= EXACT_STATS_LIMIT:
        x = torch.from_numpy(np.array(array)).float()
        mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    else:
        total = torch.zeros(meta.dim, dtype=torch.float64)
        for chunk in range(meta.num_chunks):
            total += torch.from_numpy(np.array(array[slice(*meta.rows(chunk))])).double().sum(0)
        mean64 = total / meta.items
        sq = torch.zeros(meta.dim, dtype=torch.float64)
        for chunk in range(meta.num_chunks):
            sq += ((torch.from_numpy(np.array(array[slice(*meta.rows(chunk))])).double() - mean64) ** 2).sum(0)
        mean, std = mean64.float(), (sq / max(meta.items - 1, 1)).sqrt().float().clamp_min(1e-6)
    return {"mean": mean.tolist(), "std": std.tolist()}


class EmbeddingCache:
    """Builds, completes and opens cached embeddings (see :mod:`lbench.cache`).

    Args:
        root: Folder holding the caches (shared by runs, so a second run reuses them).
        batch_size: Images per encoder forward.
        device: Device of the build when no trainer is given (``auto`` = CUDA when available).
        checkpoint_every: Batches per chunk: the unit of resumption (set when a cache is created).
        progress: Show Lightning's progress bar (plain lines when stderr is not a terminal).
        num_workers: DataLoader workers that load and transform the images.
        verify: Check a view's bytes against its build checksums when a store first opens it.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] = "checkpoints/cache",
        batch_size: int = 64,
        device: str = "auto",
        checkpoint_every: int = 20,
        progress: bool = True,
        num_workers: int = 0,
        verify: bool = True,
    ) -> None:
        if batch_size <= 0 or checkpoint_every <= 0 or num_workers < 0:
            raise CacheError("batch_size and checkpoint_every must be positive and num_workers non-negative")
        self.root = Path(root)
        self.batch_size = batch_size
        self.device = device
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        self.num_workers = num_workers
        self.verify = verify

    # -- where -----------------------------------------------------------------------------
    def folder(self, split: Any, encoder: Encoder, precision: str = "32-true") -> Path:
        """Folder of the cache of this split and encoder."""
        return self._folder(split, cache_fingerprint(split, encoder, precision))

    def _folder(self, split: Any, fp: dict[str, Any]) -> Path:
        return self.root / f"{split.name}-{fingerprint_key(fp)}"

    def is_complete(self, split: Any, encoder: Encoder, views: ViewRecipe | None = None) -> bool:
        """Whether every view of ``views`` (default: the plain one) is built (raises CacheError if unreadable)."""
        views = views if views is not None else ViewRecipe()
        fp = cache_fingerprint(split, encoder)
        meta = Meta.read(self._folder(split, fp), fp, encoder.embed_dim)
        return meta is not None and meta.is_complete([view_stem(views, n) for n in views.names()])

    # -- the API ---------------------------------------------------------------------------
    def load_or_build(self, split: Any, encoder: Encoder) -> Tensor:
        """Return the ``[N, D]`` fp16 embeddings of the plain view (a copy), building what is missing.

        Raises:
            CacheError: A cache file is unreadable, damaged or inconsistent, or the folder is
                read-only while the cache is incomplete.
        """
        return torch.from_numpy(np.array(self.ensure(split, encoder).view(0)))

    def ensure(
        self, split: Any, encoder: Encoder, views: ViewRecipe | None = None, trainer: L.Trainer | None = None
    ) -> Store:
        """Build what is missing of the split's views and return the finished :class:`Store`.

        Args:
            split: The split (``name``, ``len``, ``split[i] -> (image, label, index)``,
                ``fingerprint``, ``content_hash``).
            encoder: The encoder.
            views: Which views (default: the plain view only).
            trainer: Runs the build (devices, strategy, precision, progress bar); default a
                1-device trainer on ``device``. Its precision is part of the cache's identity.
                Under DDP every rank calls ``ensure`` and gets the store.

        Raises:
            CacheError: See :meth:`load_or_build`; also a non-finite chunk (named) or a failed write.
        """
        views = views if views is not None else ViewRecipe()
        fp = cache_fingerprint(split, encoder, str(trainer.precision) if trainer is not None else "32-true")
        folder = self._folder(split, fp)
        names = views.names()
        stems = [view_stem(views, n) for n in names]
        rank = trainer.global_rank if trainer is not None else 0
        if trainer is None and launched_rank() != 0:  # torchrun/srun: rank 0 builds alone, the others wait
            wait_until(lambda: _complete(folder, fp, encoder.embed_dim, stems), f"the embedding cache {folder}")
            return Store(Meta.read(folder, fp, encoder.embed_dim), names, stems, verify=self.verify)
        with contextlib.ExitStack() as held:
            meta = self._prepare(split, encoder, fp, folder, views, names, stems, held) if rank == 0 else None
            _barrier(trainer)
            if meta is None:
                meta = Meta.read(folder, fp, encoder.embed_dim)
                if meta is None:
                    raise CacheError(f"cache folder {folder} vanished during the build; rerun")
            if meta.is_complete(stems):
                return Store(meta, names, stems, verify=self.verify)
            plan = BuildPlan(
                stems=stems,
                transforms=[views.transform(n) for n in names],
                units=[(slot, c) for slot, stem in enumerate(stems) for c in meta.missing(stem)],
                batch_size=self.batch_size,
                names=names,
            )
            if plan.units:
                self._predict(split, encoder, meta, plan, trainer)
            _barrier(trainer)
            if rank == 0:
                self._finish(meta, stems)
            _barrier(trainer)
        if rank != 0:
            meta = Meta.read(folder, fp, encoder.embed_dim)
            assert meta is not None
        return Store(meta, names, stems, verify=self.verify)

    # -- internals -------------------------------------------------------------------------
    def _prepare(
        self,
        split: Any,
        encoder: Encoder,
        fp: dict[str, Any],
        folder: Path,
        views: ViewRecipe,
        names: list[str],
        stems: list[str],
        held: contextlib.ExitStack,
    ) -> Meta:
        """Rank 0: read the meta; when incomplete, lock the folder and create what is missing."""
        meta = Meta.read(folder, fp, encoder.embed_dim)
        if meta is not None and meta.is_complete(stems):
            return meta
        self._check_writable(folder, meta, stems)
        held.enter_context(locked_dir(folder, f"embedding cache {folder}", "wait for the other build to finish"))
        meta = Meta.read(folder, fp, encoder.embed_dim)  # another process may have built it meanwhile
        if meta is None:
            meta = Meta.new(folder, fp, len(split), encoder.embed_dim, self.batch_size * self.checkpoint_every)
        journals = meta.merge_journals()
        shape = (meta.items, meta.dim)
        try:
            for name, stem in zip(names, stems, strict=True):
                meta.add_view(stem, views.view_spec(name))
            meta.write()
            for stem in stems:
                path = meta.path(stem)
                if path.exists():
                    open_array(path, shape)  # checks header and size
                elif meta.done(stem):
                    raise CacheError(f"cache file {path} is missing; delete {folder} to rebuild the cache")
                else:
                    create(path, shape)
            for journal in journals:
                journal.unlink()
        except OSError as e:
            raise CacheError(f"cannot write the embedding cache {folder} ({e}); fix the cause (disk space, "
                             "permissions) and rerun") from e  # fmt: skip
        return meta

    def _check_writable(self, folder: Path, meta: Meta | None, stems: list[str]) -> None:
        todo = "nothing built yet" if meta is None else f"{sum(len(meta.missing(s)) for s in stems)} chunks missing"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as e:
            raise CacheError(f"cache folder {folder} is read-only ({e.strerror}) and the cache is incomplete "
                             f"({todo}); make it writable or use another cache_dir") from e  # fmt: skip

    def _trainer(self) -> L.Trainer:
        accelerator, devices = _accelerator(self.device)
        callbacks = [LineProgressBar()] if self.progress and not is_terminal() else []
        return L.Trainer(accelerator=accelerator, devices=devices, precision="32-true", logger=False,
                         enable_checkpointing=False, enable_model_summary=False, callbacks=callbacks,
                         enable_progress_bar=self.progress, default_root_dir=str(self.root))  # fmt: skip

    def _predict(self, split: Any, encoder: Encoder, meta: Meta, plan: BuildPlan, trainer: L.Trainer | None) -> None:
        trainer = trainer if trainer is not None else self._trainer()
        batches, per_unit = plan.batches(meta)
        module = EmbedModule(encoder, ChunkBatches(split, plan.transforms, batches), per_unit, self.num_workers)
        writer = StoreWriter(ChunkLedger(meta, plan, split.name, type(encoder).__name__), progress=self.progress)
        trainer.callbacks.append(writer)
        try:
            with warnings.catch_warnings():  # batches come whole from the dataset (batch_size=None)
                warnings.filterwarnings("ignore", message=".*infer the batch indices.*")
                trainer.predict(module, return_predictions=False)
        finally:
            trainer.callbacks = [c for c in trainer.callbacks if c is not writer]

    def _finish(self, meta: Meta, stems: list[str]) -> None:
        """Rank 0: merge the other ranks' journals, check completeness, store the statistics."""
        journals = meta.merge_journals()
        missing = {s: len(meta.missing(s)) for s in stems if meta.missing(s)}
        if missing:
            left = ", ".join(f"{s}: {n}" for s, n in missing.items())
            raise CacheError(f"the build of {meta.folder} ended with chunks missing ({left}); rerun to complete it")
        try:
            if meta.data["stats"] is None:
                meta.data["stats"] = view_stats(meta)
            meta.write()
            for journal in journals:
                journal.unlink()
        except OSError as e:
            raise CacheError(f"cannot write the embedding cache {meta.folder} ({e}); fix the cause and rerun") from e


def _complete(folder: Path, fp: dict[str, Any], dim: int, stems: list[str]) -> bool:
    """Whether the cache in ``folder`` has every view in ``stems`` finished (what waiting ranks poll)."""
    try:
        meta = Meta.read(folder, fp, dim)
    except CacheError:
        return False  # being written
    return meta is not None and meta.is_complete(stems)
