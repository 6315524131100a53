"""Command line: ``lbench <subcommand> -c config.yaml [--key value ...]`` (or ``python -m lbench``).

Subcommands: ``run`` (a whole simulated experiment), Lightning's ``fit``/``validate``/``test``/
``predict`` on the labeled set, ``select`` (score the pool, write the next batch to label) and
``report`` (tables and plots from run directories). ``-c NAME`` also takes the name of a config
shipped with the package (``-c default``, ``-c model/mlp``).
"""

from __future__ import annotations

import importlib
import re
import sys
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import lightning as L
import torch
from jsonargparse import ArgumentError, Namespace
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, _InstantiatorFn

import lbench
import lbench.data  # noqa: F401  (class names resolve without their module path)
import lbench.data.embeddings  # noqa: F401
import lbench.data.images  # noqa: F401
import lbench.encoders  # noqa: F401
import lbench.modules  # noqa: F401
import lbench.strategies  # noqa: F401
from lbench import console
from lbench._subcommand import error_line
from lbench.distributed import release_process_group
from lbench.errors import ConfigError, LbenchError
from lbench.loggers import ConfiguredLoggers
from lbench.trainer import LbenchTrainer

__all__ = ["LbenchCLI", "LbenchTrainer", "main"]

#: Every subcommand with its one-line description (the order of the top-level help).
SUBCOMMANDS = {
    "run": "a whole simulated experiment: rounds of fit -> test -> score -> select per arm and seed, then the report",
    "fit": "train a model on the labeled items of data.pool_file",
    "validate": "evaluate on the validation split (data.init_args.val_fraction of the labeled items)",
    "test": "evaluate on the data set's test split",
    "predict": "predict class probabilities for the whole pool",
    "select": "score the unlabeled pool with a trained model and write the next batch to label (CSV)",
    "embed": "build or complete the embedding cache of a data set and encoder, and print where it is",
    "init": "make a project of your own image folder: config, stable pool index and pool.json (then select, label)",
    "label": "import the labels a person gave (CSV, JSON or a Label Studio export) into a pool file",
    "annotate": "label the open batch in a local web page (keyboard keys, undo; answers saved as label saves them)",
    "report": "tables and plots (learning curves, label savings, cost) from one or more run directories",
}
_DESCRIPTION = "lbench: label-efficient learning (active learning, selection-via-proxy) on pretrained vision models."


class _ConfiguredModelInstantiator(_InstantiatorFn):
    """Lightning's instantiator of the ``model`` key, for that model only.

    LightningCLI registers its instantiator (which makes ``save_hyperparameters`` store the
    ``model`` config, for ``load_from_checkpoint``) for every LightningModule subclass the parser
    builds, so a second module in the config (``run --point_eval.model``) would get the top-level
    model's hyperparameters. Here it applies only to a module of the configured class whose plain
    arguments are the configured ones; any other module keeps its own ``__init__`` arguments.
    """

    def __call__(self, class_type: type, *args: Any, applied_instantiation_links: dict, **kwargs: Any) -> Any:
        if not self._is_configured_model(class_type, kwargs):
            return class_type(*args, **kwargs)
        return super().__call__(class_type, *args, applied_instantiation_links=applied_instantiation_links, **kwargs)

    def _is_configured_model(self, class_type: type, kwargs: dict[str, Any]) -> bool:
        self.cli._dump_config()
        config = self.cli.config_dump.get(self.key) or {}
        path = config.get("class_path") if isinstance(config, dict) else None
        if path is None:
            return True
        module, _, name = str(path).rpartition(".")
        try:
            if getattr(importlib.import_module(module), name) is not class_type:
                return False
        except (ImportError, AttributeError, ValueError):
            return False
        init = config.get("init_args") or {}
        plain = (int, float, str, bool, type(None))
        return all(init[k] == v for k, v in kwargs.items() if k in init and isinstance(v, plain))


class LbenchCLI(LightningCLI):
    """LightningCLI with the ``select`` and ``run`` subcommands."""

    def _add_instantiators(self) -> None:
        """Lightning's instantiators; the model's applies to the configured model only."""
        self.parser.add_instantiator(
            _ConfiguredModelInstantiator(cli=self, key="model"), L.LightningModule, subclasses=True
        )
        self.parser.add_instantiator(_InstantiatorFn(cli=self, key="data"), L.LightningDataModule, subclasses=True)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """``run``, Lightning's subcommands and ``select``."""
        return {
            "run": {"model", "datamodule"},
            **LightningCLI.subcommands(),
            "select": {"model", "datamodule"},
            "embed": {"model", "datamodule"},
        }

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> LightningArgumentParser:
        """For ``run`` and ``select``, list lbench's own arguments before the trainer/model/data groups."""
        if subcommand not in ("run", "select", "embed"):
            return super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        parser = self.init_parser(**kwargs)
        added = parser.add_method_arguments(klass, subcommand, skip=set(self.subcommands()[subcommand]))
        self._subcommand_method_arguments[subcommand] = added
        self._add_arguments(parser)
        if subcommand == "embed":  # the model is not used: do not make the user name one
            parser.set_defaults({"model": {"class_path": "lbench.modules.ProxyClassifier"}})
            # a run config (`lbench embed -c default`) builds that run's cache: run's own settings are
            # accepted and not used (they are not passed to embed)
            parser.add_method_arguments(klass, "run", skip=set(self.subcommands()["run"]))
            parser.set_defaults({"arms": []})
        return parser

    def before_select(self) -> None:
        """Give the trainer the resolved config: a proxy kept by ``select --train`` is reused only under the same."""
        assert isinstance(self.trainer, LbenchTrainer)
        self.trainer.config_text = self._parser("select").dump(self.config["select"], skip_none=False)

    def before_run(self) -> None:
        """Give the trainer the resolved config (written to the run directory) and the configured loggers."""
        assert isinstance(self.trainer, LbenchTrainer)
        config = self.config["run"]
        self.trainer.config_text = self._parser("run").dump(config, skip_none=False)
        logger = config["trainer"].get("logger")
        if logger not in (None, True, False):
            specs = logger if isinstance(logger, list) else [logger]
            self.trainer.logger_factory = ConfiguredLoggers(
                [s.as_dict() if isinstance(s, Namespace) else s for s in specs]
            )

    def _evaluation_only(self) -> None:
        # no training, so no checkpoint callback: restoring one from ckpt_path only warns about its dirpath
        self.trainer.callbacks[:] = [c for c in self.trainer.callbacks if not isinstance(c, Checkpoint)]

    def before_test(self) -> None:
        """Evaluate without a checkpoint callback."""
        self._evaluation_only()

    def before_predict(self) -> None:
        """Predict without a checkpoint callback."""
        self._evaluation_only()

    def before_validate(self) -> None:
        """Refuse ``validate`` without a validation split (instead of Lightning's traceback)."""
        self._evaluation_only()
        data = self.datamodule
        if getattr(data, "val_fraction", None) == 0:
            raise ConfigError(
                "validate needs a validation split: set --data.init_args.val_fraction (e.g. 0.2 holds out 20% of "
                "the labeled items)"
            )


_NOISE = (
    ".*LeafSpec.*",
    ".*args parameter is intended.*",
    ".*smaller than the logging interval.*",
    ".*does not have many workers.*",
    ".*tensorboardX.*",
    ".*but have no `val_dataloader`.*",
    ".*callbacks used to create the checkpoint need to be provided.*",
    ".*Total length of `list` across ranks is zero.*",  # val_dataloader without a validation split
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


def packaged_configs() -> list[str]:
    """Names of the configs shipped with the package (``default``, ``model/mlp``, ...)."""
    root = resources.files("lbench") / "configs"
    names = []
    for path in sorted(Path(str(root)).rglob("*.yaml")):
        names.append(path.relative_to(Path(str(root))).with_suffix("").as_posix())
    return names


def resolve_config(value: str) -> str:
    """A ``-c`` value: an existing file as is, else the packaged config of that name (``default``)."""
    if Path(value).exists() or value.startswith(("{", "[")) or "\n" in value:
        return value
    name = value.removesuffix(".yaml").removeprefix("configs/")
    if name in packaged_configs():
        return str(Path(str(resources.files("lbench") / "configs")) / f"{name}.yaml")
    raise ConfigError(f"config {value} does not exist (a file, or one of the packaged configs: "
                      f"{', '.join(packaged_configs())})")  # fmt: skip


def _resolve_configs(argv: list[str]) -> list[str]:
    out = list(argv)
    for i, a in enumerate(out):
        if a in ("-c", "--config") and i + 1 < len(out):
            out[i + 1] = resolve_config(out[i + 1])
        elif a.startswith("--config="):
            out[i] = "--config=" + resolve_config(a.split("=", 1)[1])
    return out


def top_level_help() -> str:
    """The text of ``lbench --help``."""
    width = max(map(len, SUBCOMMANDS))
    lines = [
        "usage: lbench <subcommand> [-c CONFIG ...] [--key value ...]",
        "",
        _DESCRIPTION,
        "",
        "subcommands:",
        *(f"  {name:<{width}}  {text}" for name, text in SUBCOMMANDS.items()),
        "",
        f"packaged configs (-c NAME): {', '.join(packaged_configs())}",
        "`lbench <subcommand> --help` lists the arguments of one subcommand; --print_config shows the resolved config.",
        "Example: lbench run -c default",
    ]
    return "\n".join(lines)


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      line: str | None = None) -> str:  # fmt: skip
    """Warnings as one line (``UserWarning: ...``), without Python's second line of source code."""
    return f"{category.__name__}: {' '.join(str(message).split())}\n"


def main(args: list[str] | None = None) -> int:
    """Entry point of ``lbench`` / ``python -m lbench``; returns the exit code (warnings print as one line)."""
    saved = warnings.formatwarning
    warnings.formatwarning = _one_line_warning
    try:
        return _main(args)
    finally:
        warnings.formatwarning = saved


def _main(args: list[str] | None = None) -> int:
    """Entry point of ``lbench`` / ``python -m lbench``; returns the exit code.

    Exit codes: 0 done, 2 a user error (one line ``lbench: error: ...`` on stderr, nothing
    written), 130 interrupted by Ctrl-C (one line saying where, and how to resume).
    """
    argv = list(sys.argv[1:] if args is None else args)
    if not argv or argv[0] in ("-h", "--help"):
        print(top_level_help(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"lbench {lbench.__version__}")
        return 0
    if argv[0] not in SUBCOMMANDS:
        print(f"lbench: error: unknown subcommand {argv[0]!r}; choose from {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    if argv[0] == "report":
        from lbench.report import main as report_main

        return report_main(argv[1:])
    if argv[0] == "init":
        from lbench.init import main as init_main

        return init_main(argv[1:])
    if argv[0] == "label":
        from lbench.label.cli import main as label_main

        return label_main(argv[1:])
    if argv[0] == "annotate":
        from lbench.annotate.cli import main as annotate_main

        return annotate_main(argv[1:])
    for pattern in _NOISE:
        warnings.filterwarnings("ignore", message=pattern)
    console.quiet_libraries()
    torch.set_float32_matmul_precision("high")
    try:
        with console.interrupt_on_sigint():
            LbenchCLI(
                model_class=L.LightningModule,
                datamodule_class=L.LightningDataModule,
                trainer_class=LbenchTrainer,
                subclass_mode_model=True,
                subclass_mode_data=True,
                save_config_kwargs={"overwrite": True},
                seed_everything_default=0,
                parser_kwargs={
                    "exit_on_error": False,
                    "prog": "lbench",
                    "description": _DESCRIPTION,
                    **{n: {"usage": f"lbench {n} [-c CONFIG ...] [--key value ...]"} for n in LbenchCLI.subcommands()},
                },
                args=_resolve_configs(argv),
            )
            console.check_interrupt()  # a Ctrl-C whose exception a finaliser swallowed
    except LbenchError as e:
        print(f"lbench: error: {error_line(str(e), limit=400)}", file=sys.stderr)
        return 2
    except ArgumentError as e:
        print(f"lbench: error: {error_line(_explain(str(e)), limit=400)}", file=sys.stderr)
        return 2
    except ValueError as e:  # jsonargparse wraps what a constructor inside a Union type raised
        cause = _lbench_cause(e)
        if cause is None:
            raise
        print(f"lbench: error: {error_line(str(cause), limit=400)}", file=sys.stderr)
        return 2
    except (console.Interrupted, KeyboardInterrupt):
        at = console.where["at"] or "the start"
        if argv[0] == "run":
            print(f"\nlbench: interrupted at {at}; run the same command again to resume", file=sys.stderr)
        else:
            print(f"\nlbench: interrupted during {argv[0]}", file=sys.stderr)
        return 130
    finally:
        release_process_group()
    return 0


def _lbench_cause(e: BaseException) -> LbenchError | None:
    """The LbenchError an exception was raised from (its ``__cause__``/``__context__`` chain), if any."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, LbenchError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def main_exit() -> None:
    """Console-script entry point (``lbench ...``)."""
    sys.exit(main())
