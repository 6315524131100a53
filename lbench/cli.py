"""Command line: ``python -m lbench <subcommand> -c config.yaml [--key value ...]``.

Subcommands: Lightning's ``fit``/``validate``/``test``/``predict`` on the labeled set, plus
``select`` (score the pool, write the next batch to label), ``run`` (a whole simulated
experiment) and ``report`` (tables and plots from run directories).
"""

from __future__ import annotations

import copy
import csv
import io
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from jsonargparse import ArgumentError
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

import lbench.data  # noqa: F401  (class names resolve without their module path)
import lbench.data.embeddings  # noqa: F401
import lbench.encoders  # noqa: F401
import lbench.modules  # noqa: F401
import lbench.strategies  # noqa: F401
from lbench._io import atomic_write
from lbench.data.embeddings import EmbeddingDataModule
from lbench.errors import BudgetError, ConfigError, LbenchError
from lbench.experiment import ExperimentSpec, format_table, run_experiment
from lbench.loop import ActiveLoop
from lbench.strategies.base import QueryStrategy
from lbench.strategies.uncertainty import margin_scores

__all__ = ["LbenchCLI", "LbenchTrainer", "main"]


class LbenchTrainer(L.Trainer):
    """A Lightning Trainer with the active-learning subcommands ``select`` and ``run``.

    It remembers its constructor arguments, so ``run`` can build a fresh Trainer per round with
    the same settings.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.init_kwargs = kwargs
        self.config_text: str | None = None

    def select(
        self,
        model: L.LightningModule,
        datamodule: L.LightningDataModule,
        query: QueryStrategy,
        budget: int,
        output: str = "selected.csv",
        ckpt_path: str | None = None,
        seed: int = 0,
    ) -> None:
        """Score the unlabeled pool with a trained model and write the next batch to label.

        Args:
            model: The trained model (give its checkpoint with ``ckpt_path``).
            datamodule: Serves the pool; its ``pool_file`` holds the current labels.
            query: The query strategy.
            budget: Number of items to select.
            output: CSV file written with one row per selected item (rank, index, id, scores).
            ckpt_path: Checkpoint of the trained model.
            seed: Seed of the strategy's randomness.
        """
        if not isinstance(datamodule, EmbeddingDataModule) or datamodule.pool_file is None:
            raise ConfigError("select needs an EmbeddingDataModule with data.pool_file set (the current labels)")
        datamodule.setup("predict")
        assert datamodule.pool is not None
        pool = datamodule.pool
        if budget > pool.num_unlabeled - len(pool.pending):
            raise BudgetError(
                f"budget {budget} is larger than the {pool.num_unlabeled - len(pool.pending)} unlabeled items "
                f"not yet requested ({len(pool.pending)} are pending in {datamodule.pool_file})"
            )
        pool.check_budget(budget)
        loop = ActiveLoop(query, budget, seed=seed)
        self.callbacks.append(loop)
        try:
            self.predict(model, datamodule=datamodule, ckpt_path=ckpt_path, return_predictions=False)
        finally:
            self.callbacks.remove(loop)
        if not self.is_global_zero:
            return
        assert loop.selected is not None and loop.view is not None
        _write_selection(Path(output), loop, datamodule)
        pool.pending = sorted(set(pool.pending) | set(loop.selected.tolist()))
        pool.save(datamodule.pool_file)
        print(f"selected {len(loop.selected)} items with {query.name}: {output}")

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
    ) -> None:
        """Run a simulated active-learning experiment: arms x seeds x rounds, then a report.

        Args:
            model: The model trained each round (a fresh seeded copy every round).
            datamodule: An EmbeddingDataModule over the pool and test split.
            arms: Query strategies to compare (e.g. ``[Random, Margin]``).
            seeds: Seeds (default ``[0]``); every arm of a seed starts from the same initial set.
            rounds: Selection rounds after the initial random set.
            budget: Items labeled per round.
            initial_budget: Size of the initial random labeled set.
            out_dir: Run directory; a run started again in the same directory resumes.
            report: Write the report (tables and curves) into ``out_dir/report`` at the end.
        """
        if not isinstance(datamodule, EmbeddingDataModule):
            raise ConfigError("run needs an EmbeddingDataModule (data.class_path: EmbeddingDataModule)")
        spec = ExperimentSpec(arms, seeds if seeds is not None else [0], rounds, budget, initial_budget)
        kwargs = copy.copy(self.init_kwargs)
        kwargs["callbacks"] = [c for c in kwargs.get("callbacks") or [] if not isinstance(c, SaveConfigCallback)]
        records = run_experiment(spec, model, datamodule, out_dir, kwargs, config_text=self.config_text)
        if not self.is_global_zero:
            return
        print(f"\nTest accuracy (%) per round, mean over seeds {spec.seeds}; results in {out_dir}/rounds.jsonl")
        print(format_table(records))
        if report:
            from lbench.report import write_report

            write_report([out_dir])


def _write_selection(path: Path, loop: ActiveLoop, datamodule: EmbeddingDataModule) -> None:
    view = loop.view
    assert view is not None and loop.selected is not None
    pos = {int(i): k for k, i in enumerate(view.index.tolist())}
    rows = [pos[int(i)] for i in loop.selected]
    probs = view.probs[rows]
    conf, pred = probs.max(1)
    margin = -margin_scores(probs)
    names = datamodule.dataset.class_names
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["rank", "index", "id", "predicted", "confidence", "margin"])
    for r, (i, p, c, m) in enumerate(
        zip(loop.selected.tolist(), pred.tolist(), conf.tolist(), margin.tolist(), strict=True)
    ):
        w.writerow([r, i, datamodule.pool_split.item_id(i), names[p] if names else p, f"{c:.6f}", f"{m:.6f}"])
    atomic_write(path, lambda f: f.write(buf.getvalue().encode("utf-8")))


class LbenchCLI(LightningCLI):
    """LightningCLI with the ``select`` and ``run`` subcommands."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Lightning's subcommands plus ``select`` and ``run``."""
        return {**LightningCLI.subcommands(), "select": {"model", "datamodule"}, "run": {"model", "datamodule"}}

    def before_run(self) -> None:
        """Give the trainer the resolved config, written to the run directory."""
        assert isinstance(self.trainer, LbenchTrainer)
        self.trainer.config_text = self._parser("run").dump(self.config["run"], skip_none=False)


_NOISE = (
    ".*LeafSpec.*",
    ".*args parameter is intended.*",
    ".*smaller than the logging interval.*",
    ".*does not have many workers.*",
    ".*tensorboardX.*",
    ".*but have no `val_dataloader`.*",
)


def _explain(message: str) -> str:
    """Shorten jsonargparse's nested union errors to the part a user can act on."""
    m = re.search(
        r"Problem with given class_path '([^']+)':\s*(.*?)(?:\s+- Expected a <class 'NoneType'>|$)", message, re.S
    )
    if m:
        key = message.split('"')[1] if message.count('"') >= 2 else "config"
        return f"{key}: {m.group(1)}: {m.group(2).strip()}"
    if "import path" in message:
        known = ", ".join(sorted(_strategy_names()))
        return f"{message} (query strategies: {known}; or give a full class path)"
    return message


def _strategy_names() -> list[str]:
    return [n for n in lbench.strategies.__all__ if n not in ("PoolView", "QueryStrategy")]


def _one_line(message: str) -> str:
    text = re.sub(r"\s+", " ", message).strip()
    return text if len(text) <= 400 else text[:397] + "..."


def main(args: list[str] | None = None) -> int:
    """Entry point of ``python -m lbench``; returns the exit code (2 for user errors)."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] == "report":
        from lbench.report import main as report_main

        return report_main(argv[1:])
    for pattern in _NOISE:
        warnings.filterwarnings("ignore", message=pattern)
    torch.set_float32_matmul_precision("high")
    try:
        LbenchCLI(
            model_class=L.LightningModule,
            datamodule_class=L.LightningDataModule,
            trainer_class=LbenchTrainer,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"exit_on_error": False},
            args=args,
        )
    except LbenchError as e:
        print(f"lbench: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except ArgumentError as e:
        print(f"lbench: error: {_one_line(_explain(str(e)))}", file=sys.stderr)
        return 2
    return 0


def main_exit() -> None:
    """Console-script entry point (``lbench ...``)."""
    sys.exit(main())
