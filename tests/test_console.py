"""Console output: plain progress lines in logs, a bar on a terminal, Lightning's chatter off."""

import io
import logging

import lightning as L
import pytest
import torch
from tqdm.auto import tqdm

from lbench import console
from lbench.console import LineProgress, LineProgressBar, progress
from lbench.trainer import LbenchTrainer


def test_line_progress_prints_plain_periodic_lines(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    clock = iter([0.0, 1.0, 31.0, 31.0, 32.0, 70.0, 70.0, 70.0])
    monkeypatch.setattr(console.time, "monotonic", lambda: next(clock))
    bar = LineProgress(100, "embedding pool", unit="img", interval=30.0)
    bar.update(10)  # t=1: quiet
    bar.update(10)  # t=31: a line
    bar.update(10)  # t=32: quiet
    bar.set_postfix_str("acc 80%")
    bar.update(70)  # t=70: a line
    bar.close()  # the final line
    lines = err.getvalue().splitlines()
    assert "\r" not in err.getvalue()
    assert lines == [
        "embedding pool: 20/100 img (20%), 31 s",
        "embedding pool: 100/100 img (100%), 70 s, acc 80%",
        "embedding pool: 100/100 img (100%), 70 s, acc 80%",
    ]


def test_progress_is_tqdm_on_a_terminal_and_lines_otherwise(monkeypatch):
    monkeypatch.setattr(console, "is_terminal", lambda: True)
    assert isinstance(progress(3, "x", disable=True), tqdm)
    monkeypatch.setattr(console, "is_terminal", lambda: False)
    assert isinstance(progress(3, "x"), LineProgress)


def test_trainer_uses_line_progress_bar_when_not_a_terminal(monkeypatch):
    monkeypatch.setattr("lbench.trainer.is_terminal", lambda: False)
    bars = [
        c for c in LbenchTrainer(logger=False, enable_checkpointing=False).callbacks if isinstance(c, LineProgressBar)
    ]
    assert len(bars) == 1
    assert not any(isinstance(c, LineProgressBar) for c in LbenchTrainer(enable_progress_bar=False).callbacks)
    monkeypatch.setattr("lbench.trainer.is_terminal", lambda: True)
    assert not any(isinstance(c, LineProgressBar) for c in LbenchTrainer(logger=False).callbacks)


def test_line_progress_bar_prints_one_line_per_epoch(capsys):
    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            loss = self.lin(batch[0]).pow(2).mean()
            self.log("train/loss", loss, prog_bar=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)), batch_size=4)
    trainer = L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, callbacks=[LineProgressBar()],
                        enable_model_summary=False)  # fmt: skip
    trainer.fit(Tiny(), data)
    err = capsys.readouterr().err
    epochs = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert [e.split(":")[0] for e in epochs] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("train/loss=" in e for e in epochs) and "\r" not in err


def test_quiet_libraries_hides_info_keeps_warnings(caplog):
    console.quiet_libraries()
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert not log.isEnabledFor(logging.INFO) and log.isEnabledFor(logging.WARNING)


def test_a_ctrl_c_swallowed_by_a_finaliser_is_raised_at_the_next_check():
    """CI saw SIGINT land in Lightning's Profiler.__del__: Python drops exceptions raised there, and the run went on."""
    import gc
    import os
    import signal
    import sys

    from lbench import console

    class Finalised:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs here, inside the finaliser
                pass

    reported = []
    saved = sys.unraisablehook
    sys.unraisablehook = reported.append  # what Python would print as "Exception ignored in ..."
    try:
        with console.interrupt_on_sigint():
            console.check_interrupt()  # nothing pending
            obj = Finalised()
            del obj
            gc.collect()
            with pytest.raises(console.Interrupted):
                console.check_interrupt()
    finally:
        sys.unraisablehook = saved
    assert reported == []  # no traceback on the console: one line, from main
    with console.interrupt_on_sigint():
        console.check_interrupt()  # a new block starts clean
