"""What reaches the console: progress on a terminal, plain lines in a log file, and Ctrl-C.

- :func:`progress` is a tqdm bar when stderr is a terminal and :class:`LineProgress` (one plain
  line at most every ``interval`` seconds, and one at the end) when it is not, so a log file
  gets readable lines instead of one long line of carriage returns.
- :class:`LineProgressBar` is the same for Lightning's fit/validate/test/predict loops.
- :func:`quiet_libraries` turns off the info chatter of Lightning (device lines, tips) that a
  user does not act on; warnings still show.
- :func:`interrupt_on_sigint` makes Ctrl-C raise :class:`Interrupted`, which Lightning does not
  swallow (it catches ``KeyboardInterrupt`` and shuts down "gracefully", after which the round
  driver would go on), and :data:`where` tells the message where the run stopped.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar
from tqdm.auto import tqdm
from typing_extensions import override

__all__ = [
    "Interrupted",
    "LineProgress",
    "LineProgressBar",
    "interrupt_on_sigint",
    "is_terminal",
    "progress",
    "quiet_libraries",
    "where",
]

#: Where the program is (``"margin seed 0 round 3 (fit)"``), for the Ctrl-C message.
where: dict[str, str] = {"at": ""}


class Interrupted(BaseException):  # noqa: N818 - named like KeyboardInterrupt, which it replaces
    """Ctrl-C (SIGINT) was pressed; a ``BaseException`` so no ``except Exception`` hides it."""


def is_terminal() -> bool:
    """Whether progress output (stderr) goes to a terminal."""
    return sys.stderr.isatty()


class LineProgress:
    """A progress counter that prints plain lines (for logs), with tqdm's ``update``/``close`` API.

    Args:
        total: Total units.
        desc: What is counted (start of every line).
        unit: Unit name.
        initial: Units already done (a resumed job).
        interval: Minimum seconds between two lines.
        disable: Print nothing.
    """

    def __init__(
        self, total: int, desc: str, unit: str = "it", initial: int = 0, interval: float = 30.0, disable: bool = False
    ) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.interval, self.disable = interval, disable
        self.postfix = ""
        self._start = self._last = time.monotonic()
        self._closed = False

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units; print a line if ``interval`` seconds passed since the last one."""
        self.n += n
        if time.monotonic() - self._last >= self.interval:
            self._print()

    def set_postfix_str(self, text: str) -> None:
        """Text appended to the next line."""
        self.postfix = text

    def close(self) -> None:
        """Print the final line (once)."""
        if not self._closed:
            self._closed = True
            self._print()

    def _print(self) -> None:
        self._last = time.monotonic()
        if self.disable:
            return
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        tail = f", {self.postfix}" if self.postfix else ""
        print(
            f"{self.desc}: {self.n}/{self.total} {self.unit}{pct}, {self._last - self._start:.0f} s{tail}",
            file=sys.stderr,
            flush=True,
        )


def progress(total: int, desc: str, unit: str = "it", initial: int = 0, disable: bool = False) -> Any:
    """A tqdm bar on a terminal, :class:`LineProgress` otherwise (same ``update``/``close`` calls)."""
    if is_terminal():
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=disable, dynamic_ncols=True)
    return LineProgress(total, desc, unit=unit, initial=initial, disable=disable)


class LineProgressBar(ProgressBar):
    """Lightning progress as plain lines (for logs).

    One line per training epoch, one per evaluation, and one at most every ``interval``
    seconds inside a long epoch.

    Args:
        interval: Minimum seconds between two lines inside an epoch.
    """

    def __init__(self, interval: float = 30.0) -> None:
        super().__init__()
        self.interval = interval
        self._enabled = True
        self._last = 0.0
        self._start = 0.0

    @override
    def disable(self) -> None:
        self._enabled = False

    @override
    def enable(self) -> None:
        self._enabled = True

    def _line(self, text: str) -> None:
        if self._enabled:
            print(text, file=sys.stderr, flush=True)
        self._last = time.monotonic()

    def _tick(self, stage: str, batch_idx: int, total: float) -> None:
        if time.monotonic() - self._last >= self.interval:
            self._line(f"{stage}: batch {batch_idx + 1}/{total}")

    def _metrics(self, trainer: L.Trainer) -> str:
        items = [f"{k}={float(v):.4g}" for k, v in trainer.progress_bar_metrics.items()]
        return (", " + ", ".join(items)) if items else ""

    @override
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = self._last = time.monotonic()

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._tick(f"epoch {trainer.current_epoch + 1}", batch_idx, self.total_train_batches)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        took = time.monotonic() - self._start
        self._line(f"epoch {trainer.current_epoch + 1}{epochs}: step {trainer.global_step}, {took:.1f} s"
                   f"{self._metrics(trainer)}")  # fmt: skip

    def _eval_start(self) -> None:
        self._start = self._last = time.monotonic()

    def _eval_end(self, stage: str) -> None:
        self._line(f"{stage}: done in {time.monotonic() - self._start:.1f} s")

    @override
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._eval_start()

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "validate":
            self._eval_end("validate")

    @override
    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._eval_start()

    @override
    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._tick("test", batch_idx, trainer.num_test_batches[dataloader_idx])

    @override
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._eval_end("test")

    @override
    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._eval_start()

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
        self._tick("predict", batch_idx, trainer.num_predict_batches[dataloader_idx])

    @override
    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._eval_end("predict")


_CHATTY = ("lightning.pytorch", "lightning.fabric", "lightning_fabric", "pytorch_lightning")


def quiet_libraries() -> None:
    """Show only warnings and errors of Lightning's loggers (no device lines, tips or summaries)."""
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)


_sigint = {"pending": False}


@contextmanager
def interrupt_on_sigint() -> Iterator[None]:
    """Within the block, Ctrl-C raises :class:`Interrupted` at once (the old handler is restored after).

    The exception is raised wherever the main thread is; when that is a finaliser (``__del__``),
    Python prints and drops it, so the handler also records the interrupt and
    :func:`check_interrupt`, called between the steps of a run, raises it there (and Python's
    "Exception ignored in" report of it is not printed).
    """

    def handler(signum: int, frame: Any) -> None:
        _sigint["pending"] = True
        raise Interrupted()

    def unraisable(info: Any) -> None:  # Python's report of an exception raised in a finaliser
        if not isinstance(info.exc_value, Interrupted):
            old_hook(info)  # others as Python reports them; ours is raised at the next check, not printed

    _sigint["pending"] = False
    try:
        old = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave Ctrl-C alone
        yield
        return
    old_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        sys.unraisablehook = old_hook


def check_interrupt() -> None:
    """Raise :class:`Interrupted` if Ctrl-C came but its exception was lost (raised inside a finaliser)."""
    if _sigint["pending"]:
        raise Interrupted()
