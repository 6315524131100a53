"""Serving cached views: same values as the plain cache, views per (seed, epoch, index), FlexMatch batches."""

import lightning as L
import numpy as np
import pytest
import torch

from lbench.data.digits import Digits
from lbench.data.embeddings import EmbeddingDataModule
from lbench.data.serving import Rows, UnlabeledPairs, pick_view
from lbench.encoders import PixelEncoder
from lbench.errors import ConfigError
from lbench.modules import ProxyClassifier
from lbench.ssl.flexmatch import FlexMatch


def test_pick_view_depends_only_on_seed_epoch_index():
    idx = torch.arange(1000)
    a = pick_view(0, 3, idx, [1, 2])
    assert a.equal(pick_view(0, 3, idx.flip(0), [1, 2]).flip(0))  # no dependence on order
    assert a.equal(torch.cat([pick_view(0, 3, idx[:400], [1, 2]), pick_view(0, 3, idx[400:], [1, 2])]))
    assert set(a.tolist()) == {1, 2} and 400 < int((a == 1).sum()) < 600  # both views, about evenly
    assert not a.equal(pick_view(0, 4, idx, [1, 2])) and not a.equal(pick_view(1, 3, idx, [1, 2]))


def test_rows_read_the_right_view_and_standardise():
    views = [np.arange(12, dtype=np.float16).reshape(6, 2) + 100 * v for v in range(3)]
    mean, std = torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0])
    rows = Rows(views, torch.tensor([5, 0, 3]), mean, std, labels=torch.tensor([7, 8, 9]), view_choices=[1, 2])
    batch = rows.__getitems__([0, 1, 2])
    ids = pick_view(0, 0, torch.tensor([5, 0, 3]), [1, 2])
    pairs = zip(ids.tolist(), [5, 0, 3], strict=True)
    want = torch.stack([torch.from_numpy(views[v][i].astype(np.float32)) for v, i in pairs])
    assert torch.equal(batch["x"], (want - mean) / std)
    assert batch["index"].tolist() == [5, 0, 3] and batch["y"].tolist() == [7, 8, 9]
    pairs = UnlabeledPairs([1], [2], views=views, index=torch.arange(6), mean=None, std=None)
    b = pairs.__getitems__([4])
    assert b["x_w"].tolist() == [[108.0, 109.0]] and b["x_s"].tolist() == [[208.0, 209.0]]


@pytest.fixture(scope="module")
def dm_views(tmp_path_factory):
    dm = EmbeddingDataModule(Digits(), PixelEncoder(native_size=8), cache_dir=str(tmp_path_factory.mktemp("c")),
                             weak_views=2, strong_views=1, batch_size=16, samples_per_epoch=64)  # fmt: skip
    dm.setup("fit")
    pool = dm.new_pool()
    pool.add_labels(torch.arange(30), dm.make_oracle().query(torch.arange(30)), round=0)
    dm.pool = pool
    return dm


def test_plain_view_is_served_like_the_old_in_memory_copy(dm_views):
    plain = torch.from_numpy(np.asarray(dm_views.pool_store.view(0), dtype=np.float32))
    old = (plain - plain.mean(0)) / plain.std(0).clamp_min(1e-6)  # what the DataModule held before
    assert torch.equal(dm_views.pool_x, old)
    batch = next(iter(dm_views.predict_dataloader()))
    assert torch.equal(batch["x"], old[: len(batch["x"])])


def test_supervised_batches_use_weak_views_and_ssl_batches_pair_weak_and_strong(dm_views):
    class Holder:
        lightning_module = None
        current_epoch = 0
        world_size = 1

    dm_views.trainer = Holder()
    labeled = dm_views.train_dataloader()
    batch = next(iter(labeled))
    assert set(batch) == {"x", "y", "index"} and batch["x"].shape == (16, 64)
    store = dm_views.pool_store
    weak = [torch.from_numpy(np.asarray(store.view(v), dtype=np.float32)) for v in store.view_ids("weak")]
    i = int(batch["index"][0])
    row = batch["x"][0] * store.std + store.mean
    assert any(torch.allclose(row, w[i], atol=1e-2) for w in weak)
    Holder.lightning_module = ProxyClassifier(ssl=FlexMatch(uratio=3))
    combined = dm_views.train_dataloader()
    combined_batch = next(iter(combined))
    if isinstance(combined_batch, tuple):
        combined_batch = combined_batch[0]
    lb, ulb = combined_batch["lb"], combined_batch["ulb"]
    assert lb["x"].shape == (16, 64) and ulb["x_w"].shape == (48, 64) and ulb["x_s"].shape == (48, 64)
    assert not torch.equal(ulb["x_w"], ulb["x_s"])
    dm_views.trainer = None


def test_ssl_without_augmented_views_is_one_clear_error(tmp_path):
    dm = EmbeddingDataModule(Digits(), PixelEncoder(native_size=8), cache_dir=str(tmp_path))
    model = ProxyClassifier(ssl=FlexMatch())
    pool = dm.new_pool()
    dm.setup("fit")
    pool.add_labels(torch.arange(20), dm.make_oracle().query(torch.arange(20)), round=0)
    dm.pool = pool
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(ConfigError, match="weak_views"):
        trainer.fit(model, datamodule=dm)


def test_flexmatch_proxy_trains_on_cached_views(dm_views):
    model = ProxyClassifier(ssl=FlexMatch(p_cutoff=0.7))
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)  # fmt: skip
    trainer.fit(model, datamodule=dm_views)
    table = model.ssl.state_dict()["selected_label"]
    assert table.shape == (dm_views.pool_size,) and int((table >= 0).sum()) > 0  # confident items recorded


def test_labeled_views_choice(dm_views):
    class Holder:
        lightning_module = None
        current_epoch = 0
        world_size = 1

    store = dm_views.pool_store
    plain = torch.from_numpy(np.asarray(store.view(0), dtype=np.float32))
    expect = (plain - store.mean) / store.std
    try:
        dm_views.trainer = Holder()
        dm_views.labeled_views = "plain"
        batch = next(iter(dm_views.train_dataloader()))
        assert torch.equal(batch["x"], expect[batch["index"]])
        dm_views.labeled_views = "plain+weak"
        rows = dm_views.train_dataloader().dataset
        assert rows.view_choices == [0, *store.view_ids("weak")]
    finally:
        dm_views.labeled_views, dm_views.trainer = "weak", None
    with pytest.raises(ConfigError, match="labeled_views"):
        EmbeddingDataModule(Digits(), PixelEncoder(native_size=8), labeled_views="strong")
