"""FlexMatch inside Lightning: a user's own DataModule, checkpoints, and 2 DDP ranks."""

import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader, TensorDataset

from lbench.errors import ConfigError
from lbench.modules import ProxyClassifier
from lbench.ssl import FlexMatch
from tests.ssl import ddp_flexmatch

HELPER = Path(__file__).parent / "ddp_flexmatch.py"
N, K, D = 60, 3, 8


class Dicts(TensorDataset):
    """Rows of named tensors as dicts."""

    def __init__(self, **tensors):
        super().__init__(*tensors.values())
        self.keys = list(tensors)

    def __getitem__(self, i):
        return dict(zip(self.keys, super().__getitem__(i), strict=True))


class ToyDataModule(L.LightningDataModule):
    """What a user might write: 3 Gaussian blobs, 9 labels, weak/strong views by noise, a CombinedLoader."""

    def __init__(self, uratio=2, batch_size=3, semi=True):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.y = torch.arange(N) % K
        x = 3.0 * torch.randn(K, D, generator=g)[self.y] + 0.5 * torch.randn(N, D, generator=g)
        self.x, self.x_w, self.x_s = (
            x,
            x + 0.1 * torch.randn(N, D, generator=g),
            x + 0.6 * torch.randn(N, D, generator=g),
        )
        self.labeled = torch.arange(9)
        self.uratio, self.batch_size, self.semi = uratio, batch_size, semi

    def train_dataloader(self):
        i = self.labeled
        lb = DataLoader(Dicts(x=self.x[i], y=self.y[i], index=i), batch_size=self.batch_size, shuffle=True,
                        drop_last=True)  # fmt: skip
        if not self.semi:
            return lb
        ulb = DataLoader(Dicts(x_w=self.x_w, x_s=self.x_s, index=torch.arange(N)),
                         batch_size=self.batch_size * self.uratio, shuffle=True, drop_last=True)  # fmt: skip
        return CombinedLoader({"lb": lb, "ulb": ulb}, mode="max_size_cycle")

    def test_dataloader(self):
        return DataLoader(Dicts(x=self.x, y=self.y, index=torch.arange(N)), batch_size=16)

    def predict_dataloader(self):
        return DataLoader(Dicts(x=self.x, index=torch.arange(N)), batch_size=16)


class Recorder(Callback):
    def on_train_start(self, trainer, pl_module):
        self.start_table = pl_module.ssl.selected_label.clone()


def trainer(tmp_path, epochs, **kwargs):
    return L.Trainer(accelerator="cpu", max_epochs=epochs, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                     **kwargs)  # fmt: skip


def ssl_model(**kwargs):
    return ProxyClassifier(
        num_classes=K, in_dim=D, lr=0.05, ssl=FlexMatch(pool_size=N, p_cutoff=0.7, uratio=2, **kwargs)
    )


def test_proxy_with_flexmatch_trains_on_a_users_datamodule(tmp_path):
    L.seed_everything(0, verbose=False)
    model = ssl_model()
    dm = ToyDataModule()
    t = trainer(tmp_path, epochs=2)
    t.fit(model, datamodule=dm)
    assert t.global_step == 2 * (N // 6)  # the unlabeled loader sets the epoch (max_size_cycle)
    assert model.ssl.num_classes == K  # filled from the module
    table = model.ssl.selected_label
    assert (table >= 0).sum() >= N // 2  # most items got a confident pseudo-label
    assert (table[table >= 0] == dm.y[table >= 0]).float().mean() > 0.9  # easy blobs: mostly right
    logged = t.callback_metrics
    assert {"train/loss", "train/sup_loss", "train/unsup_loss", "train/mask_ratio", "train/acc"} <= set(logged)
    assert 0 < float(logged["train/mask_ratio"]) <= 1
    assert float(t.test(model, datamodule=dm, verbose=False)[0]["test/min_class_acc"]) > 0.8
    out = t.predict(model, datamodule=dm)
    assert torch.equal(torch.cat([o["index"] for o in out]), torch.arange(N))


def test_checkpoint_round_trip_continues_with_the_same_table(tmp_path):
    L.seed_everything(0, verbose=False)
    model = ssl_model()
    t = trainer(tmp_path, epochs=1)
    t.fit(model, datamodule=ToyDataModule())
    path = tmp_path / "a.ckpt"
    t.save_checkpoint(path)
    saved = model.ssl.selected_label.clone()
    assert (saved >= 0).any()

    ckpt = torch.load(path, weights_only=True)  # tensors and plain containers only
    assert torch.equal(ckpt["ssl"]["selected_label"], saved)
    assert ckpt["hyper_parameters"]["ssl"]["init_args"]["p_cutoff"] == 0.7
    assert ckpt["hyper_parameters"]["in_dim"] == D and ckpt["hyper_parameters"]["hidden_dim"] is None

    loaded = ProxyClassifier.load_from_checkpoint(path)  # rebuilds FlexMatch from the hparams dict
    assert isinstance(loaded.ssl, FlexMatch) and loaded.ssl.p_cutoff == 0.7
    assert torch.equal(loaded.ssl.selected_label, saved)

    resumed, rec = ssl_model(), Recorder()
    t2 = trainer(tmp_path, epochs=2, callbacks=[rec])
    t2.fit(resumed, datamodule=ToyDataModule(), ckpt_path=path)
    assert torch.equal(rec.start_table, saved)  # not a fresh (all -1) table
    assert (resumed.ssl.selected_label[saved >= 0] >= 0).all()  # entries are overwritten, never unset


def test_checkpoint_of_a_supervised_proxy_keeps_its_hparams(tmp_path):
    L.seed_everything(0, verbose=False)
    model = ProxyClassifier(num_classes=K, in_dim=D, hidden_dim=4)
    t = trainer(tmp_path, epochs=1)
    t.fit(model, datamodule=ToyDataModule(semi=False))
    t.save_checkpoint(tmp_path / "s.ckpt")
    ckpt = torch.load(tmp_path / "s.ckpt", weights_only=True)
    assert "ssl" not in ckpt
    assert ckpt["hyper_parameters"] == {"num_classes": K, "in_dim": D, "hidden_dim": 4, "dropout": 0.0, "lr": 1e-3,
                                        "weight_decay": 1e-2, "ssl": None}  # fmt: skip
    assert ProxyClassifier.load_from_checkpoint(tmp_path / "s.ckpt").ssl is None


def test_batches_that_do_not_match_the_model_say_so(tmp_path):
    with pytest.raises(ConfigError, match="CombinedLoader"):
        trainer(tmp_path, epochs=1).fit(ssl_model(), datamodule=ToyDataModule(semi=False))
    with pytest.raises(ConfigError, match="no ssl"):
        trainer(tmp_path, epochs=1).fit(ProxyClassifier(num_classes=K, in_dim=D), datamodule=ToyDataModule())


def test_ddp_two_ranks_share_the_table_of_one_process(tmp_path):
    """6 steps, global batches split over 2 gloo ranks == the same batches in 1 process."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, str(HELPER), str(tmp_path), "2"], env=env, capture_output=True,
                          text=True, timeout=240)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = torch.load(tmp_path / "table_0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "table_1.pt", weights_only=True)
    assert torch.equal(rank0, rank1)
    single_dir = tmp_path / "single"
    single_dir.mkdir()
    ddp_flexmatch.run(single_dir, devices=1)
    assert torch.equal(rank0, torch.load(single_dir / "table_0.pt", weights_only=True))
    # each rank wrote items only the other rank saw: without the all_gather the tables would differ
    _, ulb = ddp_flexmatch.schedule()
    seen = [set(ddp_flexmatch.shard(ulb, r, 2).flatten().tolist()) for r in range(2)]
    set_items = set(torch.nonzero(rank0 >= 0).flatten().tolist())
    assert set_items & (seen[1] - seen[0]) and set_items & (seen[0] - seen[1])
