import lightning as L
import pytest
import torch

from lbench.data import Digits
from lbench.data.embeddings import EmbeddingDataModule
from lbench.encoders import PixelEncoder
from lbench.errors import ConfigError
from lbench.modules import ProxyClassifier


@pytest.fixture(scope="module")
def datamodule(tmp_path_factory):
    dm = EmbeddingDataModule(Digits(), PixelEncoder(native_size=8), cache_dir=str(tmp_path_factory.mktemp("c")),
                             batch_size=64, samples_per_epoch=512)  # fmt: skip
    pool = dm.new_pool()
    oracle = dm.make_oracle()
    idx = torch.randperm(dm.pool_size, generator=torch.Generator().manual_seed(0))[:300]
    pool.add_labels(idx, oracle.query(idx), round=0)
    dm.pool = pool
    return dm


def trainer(tmp_path, epochs=8):
    return L.Trainer(accelerator="cpu", max_epochs=epochs, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip


@pytest.mark.parametrize("hidden_dim", [None, 32])
def test_fit_test_predict(datamodule, tmp_path, hidden_dim):
    L.seed_everything(0, verbose=False)
    model = ProxyClassifier(hidden_dim=hidden_dim, lr=0.01)
    t = trainer(tmp_path)
    t.fit(model, datamodule=datamodule)
    assert model.hparams.in_dim == 64 and model.hparams.num_classes == 10  # taken from the data module
    metrics = t.test(model, datamodule=datamodule, verbose=False)[0]
    assert metrics["test/acc"] > 0.85  # 300 labeled digits, pixels: well above chance
    assert 0 < metrics["test/balanced_acc"] <= 1 and 0 < metrics["test/macro_f1"] <= 1
    out = t.predict(model, datamodule=datamodule)
    index = torch.cat([o["index"] for o in out])
    probs = torch.cat([o["probs"] for o in out])
    emb = torch.cat([o["embeddings"] for o in out])
    assert torch.equal(index, torch.arange(datamodule.pool_size))  # the whole pool, in order
    assert torch.allclose(probs.sum(1), torch.ones(len(probs)), atol=1e-5)
    assert emb.shape[1] == (hidden_dim or 64)
    with torch.no_grad():
        assert torch.allclose(model.head(emb).softmax(-1), probs, atol=1e-5)  # embeddings are penultimate


def test_training_uses_pool_labels_not_ground_truth(datamodule):
    batch = next(iter(datamodule.train_dataloader()))
    assert torch.equal(batch["y"], datamodule.pool.labels[batch["index"]])
    wrong = datamodule.new_pool()
    idx = datamodule.pool.labeled_index()
    wrong.add_labels(idx, (datamodule.pool.labels[idx] + 1) % 10, round=0)
    saved, datamodule.pool = datamodule.pool, wrong
    try:
        batch = next(iter(datamodule.train_dataloader()))
        assert torch.equal(batch["y"], wrong.labels[batch["index"]])
    finally:
        datamodule.pool = saved


def test_small_labeled_set_is_cycled_to_samples_per_epoch(datamodule):
    pool = datamodule.new_pool()
    pool.add_labels(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), round=0)
    saved, datamodule.pool = datamodule.pool, pool
    try:
        assert len(datamodule.train_dataloader().dataset) == 512
    finally:
        datamodule.pool = saved


def test_standardized_pool_features(datamodule):
    x = datamodule.pool_x
    assert torch.allclose(x.mean(0), torch.zeros(x.shape[1]), atol=1e-3)


def test_bad_hyperparameters():
    with pytest.raises(ConfigError):
        ProxyClassifier(lr=0)
    with pytest.raises(ConfigError):
        ProxyClassifier(hidden_dim=0)


def test_datamodule_state_dict_restores_pool_only_when_none_attached(datamodule):
    state = datamodule.state_dict()
    fresh = EmbeddingDataModule(Digits(), PixelEncoder(native_size=8))
    fresh.load_state_dict(state)
    assert fresh.pool.order == datamodule.pool.order
    other = fresh.new_pool()
    other.add_labels(torch.tensor([0]), torch.tensor([1]), round=0)
    fresh.pool = other
    fresh.load_state_dict(state)  # the attached pool (current labels) wins over the checkpoint's
    assert fresh.pool is other
