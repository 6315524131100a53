"""LbenchTrainer: a Lightning Trainer with the active-learning subcommands ``select`` and ``run``.

LightningCLI builds each subcommand's arguments from the signature and docstring of the Trainer
method of the same name, so these methods are the command line's schema.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import hashlib
import io
import json
import os
import secrets
from pathlib import Path
from typing import Any, Literal

import lightning as L
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar
from lightning.pytorch.cli import SaveConfigCallback

from lbench._io import atomic_write, atomic_write_json, check_writable, read_json, remove_stale_temps
from lbench.batch_export import batch_items, render_batch, write_files
from lbench.console import LineProgressBar, is_terminal
from lbench.data.embeddings import EmbeddingDataModule
from lbench.data.pool_module import PoolDataModule
from lbench.errors import BudgetError, ConfigError, DataError
from lbench.experiment import ExperimentSpec, LoggerFactory, format_table, run_experiment
from lbench.heldout import CVEstimate, cross_validate
from lbench.locks import locked_dir
from lbench.loop import ActiveLoop
from lbench.point_eval import PointEvaluation
from lbench.pool import LabelPool
from lbench.run_identity import config_identity, data_identity
from lbench.stopping import select_stop_signal
from lbench.strategies.base import QueryStrategy
from lbench.strategies.uncertainty import margin_scores

__all__ = ["LbenchTrainer"]


class LbenchTrainer(L.Trainer):
    """A Lightning Trainer with the active-learning subcommands ``select`` and ``run``.

    It remembers its constructor arguments, so ``run`` can build a fresh Trainer per round with
    the same settings. When stderr is not a terminal (a log file, CI), progress is printed as
    plain lines (:class:`~lbench.console.LineProgressBar`) instead of tqdm's carriage returns.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.init_kwargs = dict(kwargs)
        callbacks = list(kwargs.get("callbacks") or [])
        wants_bar = kwargs.get("enable_progress_bar", True) is not False
        if wants_bar and not is_terminal() and not any(isinstance(c, ProgressBar) for c in callbacks):
            kwargs["callbacks"] = [*callbacks, LineProgressBar()]
        super().__init__(**kwargs)
        self.config_text: str | None = None
        self.logger_factory: LoggerFactory | None = None

    def select(
        self,
        model: L.LightningModule,
        datamodule: L.LightningDataModule,
        query: QueryStrategy,
        budget: int,
        output: str | None = None,
        ckpt_path: str | None = None,
        seed: int = 0,
        train: bool = False,
    ) -> None:
        """Score the unlabeled pool with a trained model and write the next batch to label.

        Args:
            model: The trained model (give its checkpoint with ``ckpt_path``).
            datamodule: Serves the pool; its ``pool_file`` holds the current labels.
            query: The query strategy.
            budget: Number of items to select.
            output: CSV written with one row per selected item (rank, index, id, scores); default
                ``selected.csv`` next to ``pool_file``.
            ckpt_path: Checkpoint of the trained model (from ``lbench fit``); required unless the
                strategy works without a trained model (Random, TypiClust).
            seed: Seed of the strategy's randomness.
            train: Train the model on the current labels first, instead of ``ckpt_path``: with the
                trainer settings of the config, kept as ``proxy.ckpt`` next to the pool file and
                reused while the labels stay the same (``proxy.json`` holds their hash).
        """
        if not isinstance(datamodule, EmbeddingDataModule) or datamodule.pool_file is None:
            raise ConfigError("select needs an EmbeddingDataModule with data.pool_file set (the current labels)")
        if train and ckpt_path is not None:
            raise ConfigError("give --ckpt_path (a trained model) or --train true (train one now), not both")
        if query.requires_model and ckpt_path is None and not train:
            raise ConfigError(
                f"query strategy {type(query).__name__} scores the pool with a trained model: give --ckpt_path "
                "(a checkpoint written by `lbench fit`) or --train true, or start cold with --query Random or "
                "--query TypiClust"
            )
        if ckpt_path is not None and not Path(ckpt_path).is_file():
            raise ConfigError(f"checkpoint {ckpt_path} does not exist")
        out_path = Path(output) if output is not None else Path(datamodule.pool_file).parent / "selected.csv"
        check_writable(out_path)
        check_writable(datamodule.pool_file)
        pool_dir = Path(datamodule.pool_file).parent
        if not pool_dir.is_dir():
            raise DataError(f"pool file {datamodule.pool_file} does not exist")
        lock = locked_dir(pool_dir, f"pool file {datamodule.pool_file}", "wait for the other select or label to finish")
        with lock if self.is_global_zero else contextlib.nullcontext():
            if self.is_global_zero:  # answers journaled by a `label` that crashed before it wrote pool.json
                from lbench.label import sync_pool

                sync_pool(datamodule.pool_file)
            if train:
                ckpt_path = self._train_on_labels(model, datamodule)
            self._select_locked(datamodule, query, budget, out_path, model, ckpt_path, seed)

    def _train_on_labels(self, model: L.LightningModule, datamodule: EmbeddingDataModule) -> str:
        """``proxy.ckpt`` next to the pool file, trained on its labels now unless it already was."""
        assert datamodule.pool_file is not None
        folder = Path(datamodule.pool_file).parent
        pool = LabelPool.load(datamodule.pool_file)
        key = _proxy_key(pool, model, datamodule, self.config_text)
        ckpt, meta = folder / "proxy.ckpt", folder / "proxy.json"
        if ckpt.is_file() and meta.is_file():
            with contextlib.suppress(OSError, ValueError):
                stored = read_json(meta)
                if stored.get("labels") == key:
                    print(f"the labels did not change since {ckpt} was trained: using it")
                    if isinstance(stored.get("cv"), dict) and not datamodule.has_test_split:
                        print(CVEstimate.from_json(stored["cv"]).line())
                    return str(ckpt)
        if pool.num_labeled == 0:
            raise ConfigError("--train needs labeled items: start cold with --query Random or --query TypiClust")
        kwargs = copy.copy(self.init_kwargs)
        kwargs["callbacks"] = [
            c for c in kwargs.get("callbacks") or [] if not isinstance(c, SaveConfigCallback | Checkpoint)
        ]
        kwargs["callbacks"] = [c for c in kwargs["callbacks"] if not isinstance(c, ProgressBar)]
        kwargs.update(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=str(folder))  # fmt: skip
        trainer = L.Trainer(**kwargs)
        trainer.fit(copy.deepcopy(model), datamodule=datamodule)
        # no test split: a cross-validated estimate of the same recipe on the labeled set (lbench.heldout)
        estimate = None if datamodule.has_test_split else cross_validate(model, datamodule, kwargs)
        if self.is_global_zero:
            tmp = folder / f".proxy.ckpt.{secrets.token_hex(6)}.tmp"  # as atomic_write names its temp files
            trainer.save_checkpoint(tmp)
            os.replace(tmp, ckpt)
            cv = {"cv": estimate.to_json()} if estimate is not None else {}
            atomic_write_json(meta, {"labels": key, "num_labeled": pool.num_labeled, **cv})
            print(f"trained on {pool.num_labeled} labels: {ckpt}")
            if estimate is not None:
                print(estimate.line())
        return str(ckpt)

    def _select_locked(
        self,
        datamodule: EmbeddingDataModule,
        query: QueryStrategy,
        budget: int,
        out_path: Path,
        model: L.LightningModule,
        ckpt_path: str | None,
        seed: int,
    ) -> None:
        datamodule.setup("predict")
        assert datamodule.pool is not None
        pool = datamodule.pool
        excluded = pool.excluded_from_selection()  # pending, and answered skip/unsure
        if budget > pool.num_unlabeled - len(excluded):
            raise BudgetError(
                f"budget {budget} is larger than the {pool.num_unlabeled - len(excluded)} unlabeled items "
                f"not yet requested or skipped ({len(pool.pending)} are pending, {len(excluded) - len(pool.pending)} "
                f"skipped in {datamodule.pool_file})"
            )
        pool.check_budget(budget)
        loop = ActiveLoop(query, budget, seed=seed)
        saved, loggers = list(self.callbacks), list(self.loggers)
        # select never trains: no checkpoint callback (it would warn about a changed dirpath), no saved
        # config and no logger (they would write lightning_logs/ into the current directory)
        self.callbacks[:] = [c for c in saved if not isinstance(c, SaveConfigCallback | Checkpoint)] + [loop]
        self.loggers = []
        try:
            self.predict(model, datamodule=datamodule, ckpt_path=ckpt_path, return_predictions=False)
        finally:
            self.callbacks[:] = saved
            self.loggers = loggers
        if not self.is_global_zero:
            return
        assert loop.selected is not None and loop.view is not None
        pool_dir = Path(datamodule.pool_file).parent
        remove_stale_temps(pool_dir, recursive=False)  # we hold the folder's lock
        batch = _write_selection(out_path, loop, datamodule, query, pool_dir)
        pool.pending = sorted(set(pool.pending) | set(loop.selected.tolist()))
        pool.save(datamodule.pool_file)
        print(f"selected {len(loop.selected)} items with {query.name}: {out_path}")
        print(f"batch files: {', '.join(str(p) for p in batch)}")
        assert loop.pool_predictions is not None
        state = select_stop_signal(pool_dir, loop.pool_predictions, seed, num_labeled=pool.num_labeled)
        print(state.line())
        if state.note:
            print(state.note)

    def embed(self, model: L.LightningModule, datamodule: L.LightningDataModule) -> None:
        """Build or complete the embedding cache of the data set (pool and test split) and say where it is.

        ``run``, ``fit`` and ``select`` use the same cache (and build it when it is missing), so
        ``embed`` is the way to build it ahead of time, e.g. on a GPU node. An interrupted build resumes.

        Args:
            model: Not used (the encoder is ``data.init_args.encoder``).
            datamodule: An EmbeddingDataModule (data set + encoder + cache folder).
        """
        if not isinstance(datamodule, EmbeddingDataModule):
            raise ConfigError("embed needs an EmbeddingDataModule (data.class_path: EmbeddingDataModule)")
        check_writable(datamodule.cache.root, "folder")
        cache, encoder = datamodule.cache, datamodule.encoder
        complete = cache.is_complete(datamodule.pool_split, encoder, datamodule.views) and (
            not datamodule.has_test_split or cache.is_complete(datamodule.test_split, encoder)
        )
        seconds = datamodule.prepare_embeddings()
        if not self.is_global_zero:
            return
        for line in describe_cache(datamodule):
            print(line)
        print("the cache was complete already" if complete else f"built in {seconds:.1f} s")

    def run(
        self,
        model: L.LightningModule,
        datamodule: L.LightningDataModule,
        arms: list[QueryStrategy],
        seeds: list[int] | None = None,
        rounds: int = 5,
        budget: int = 100,
        initial_budget: int = 100,
        out_dir: str = "checkpoints/run",
        report: bool = True,
        point_eval: PointEvaluation | None = None,
        score_dtype: Literal["float32", "float16"] = "float32",
        sharded_selection: bool = False,
    ) -> None:
        """Run a simulated active-learning experiment: arms x seeds x rounds, then a report.

        Args:
            model: The model trained each round (a fresh seeded copy every round).
            datamodule: An EmbeddingDataModule over the pool and test split (selection via a proxy), or
                an ImageDataModule (selection with the fine-tuned model itself, with a FineTuneClassifier).
            arms: Query strategies to compare (e.g. ``[Random, Margin]``).
            seeds: Seeds (default ``[0]``); every arm of a seed starts from the same initial set.
            rounds: Selection rounds after the initial random set.
            budget: Items labeled per round.
            initial_budget: Size of the initial random labeled set.
            out_dir: Run directory; the same command again resumes it, and more rounds, arms
                or seeds extend it.
            report: Write the report (tables and curves) into ``out_dir/report`` at the end.
            point_eval: The paper's point evaluation: after the last round of each arm and seed,
                fine-tune this model end to end on the labeled set and record its test and pool
                accuracy in ``out_dir/point_eval.jsonl`` (e.g. ``-c point_eval`` for a
                FineTuneClassifier on the run's encoder).
            score_dtype: Storage of the pool's scores between scoring and selection (per-rank
                shards on disk): ``float32`` (exactly the in-memory selection) or ``float16`` (half
                the disk and rank 0 memory, for pools of millions).
            sharded_selection: Under DDP, BADGE and coreset select on every rank over its part of
                the pool (exact across ranks; memory and time per rank ``O(N / world)``) instead of
                on rank 0 alone.
        """
        if not isinstance(datamodule, PoolDataModule):
            raise ConfigError(
                "run needs a pool data module: EmbeddingDataModule (a proxy on cached embeddings) or "
                "ImageDataModule (a model fine-tuned on images every round)"
            )
        spec = ExperimentSpec(arms, seeds if seeds is not None else [0], rounds, budget, initial_budget)
        check_writable(out_dir, "folder")
        kwargs = copy.copy(self.init_kwargs)
        kwargs["callbacks"] = [c for c in kwargs.get("callbacks") or [] if not isinstance(c, SaveConfigCallback)]
        kwargs["enable_progress_bar"] = False  # one bar over all rounds instead
        records = run_experiment(
            spec,
            model,
            datamodule,
            out_dir,
            kwargs,
            config_text=self.config_text,
            logger_factory=self.logger_factory,
            point_eval=point_eval,
            score_dtype=score_dtype,
            sharded_selection=sharded_selection,
        )
        if not self.is_global_zero:
            return
        print(f"\nTest accuracy (%) per round, mean over seeds {spec.seeds}; results in {out_dir}/rounds.jsonl")
        print(format_table(records))
        if report:
            from lbench.report import write_report

            write_report([out_dir])


def _proxy_key(pool: LabelPool, model: L.LightningModule, datamodule: L.LightningDataModule, config: str | None) -> str:
    """What a kept ``proxy.ckpt`` was trained from: the labels, the model, data and trainer settings, the data.

    The settings are the config's result-relevant ``model``, ``data``, ``trainer`` and
    ``seed_everything`` values (:func:`lbench.run_identity.config_identity`; not the query or the
    budget), or the model's hyper-parameters without a config; the data is the splits' content
    hashes and the encoder's fingerprint. Any change trains a new proxy.
    """
    ident = config_identity(config)
    settings = (
        {k: v for k, v in ident.items() if k.split(".")[0] in ("model", "data", "trainer", "seed_everything")}
        if ident is not None
        else {"model": repr(dict(model.hparams))}
    )
    text = json.dumps([settings, data_identity(datamodule)], sort_keys=True, default=str)
    h = hashlib.sha256(pool.labels.numpy().tobytes() + str(pool.num_classes).encode() + text.encode())
    return h.hexdigest()[:16]


def describe_cache(datamodule: EmbeddingDataModule) -> list[str]:
    """One line per cached split: its folder, size on disk and fingerprint key."""
    lines = []
    splits = [datamodule.pool_split] + ([datamodule.test_split] if datamodule.has_test_split else [])
    for split in splits:
        folder = datamodule.cache.folder(split, datamodule.encoder)
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) if folder.is_dir() else 0
        lines.append(f"{split.name}: {len(split)} items, {size / 1e6:.1f} MB in {folder}")
    return lines


def _write_selection(
    path: Path, loop: ActiveLoop, datamodule: EmbeddingDataModule, query: QueryStrategy, pool_dir: Path
) -> list[Path]:
    """Write ``selected.csv`` (``path``) and the numbered batch files next to the pool; returns the batch files.

    Every file is rendered in memory before the first one is written.
    """
    view = loop.view
    assert view is not None and loop.selected is not None
    pos = {int(i): k for k, i in enumerate(view.index.tolist())}
    rows = [pos[int(i)] for i in loop.selected]
    probs = view.probs[rows]
    conf, pred = probs.max(1)
    margin = -margin_scores(probs)
    names = datamodule.dataset.class_names or (datamodule.pool.class_names if datamodule.pool is not None else None)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["rank", "index", "id", "predicted", "confidence", "margin"])
    for r, (i, p, c, m) in enumerate(
        zip(loop.selected.tolist(), pred.tolist(), conf.tolist(), margin.tolist(), strict=True)
    ):
        w.writerow([r, i, datamodule.pool_split.item_id(i), names[p] if names else p, f"{c:.6f}", f"{m:.6f}"])
    items = batch_items(loop.selected.tolist(), probs, datamodule.pool_split, names, query)
    batch = render_batch(pool_dir, items, datamodule.pool_split)
    data = buf.getvalue().encode("utf-8")
    atomic_write(path, lambda f: f.write(data))
    return write_files(batch)
