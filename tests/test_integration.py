"""Real data, real pretrained model: Fashion-MNIST slice with EfficientNet-Lite0 features."""

from pathlib import Path

import lightning as L
import pytest
import torch

from lbench.data import FashionMNIST
from lbench.data.embeddings import EmbeddingDataModule
from lbench.data.fashion_mnist import DEFAULT_ROOT
from lbench.encoders import EfficientNetLite0Encoder
from lbench.modules import ProxyClassifier

pytestmark = pytest.mark.skipif(
    not Path(DEFAULT_ROOT, "train-images-idx3-ubyte.gz").exists(), reason="dataset-fashion-mnist is not installed"
)


def test_pretrained_features_learn_fashion_mnist(tmp_path):
    dm = EmbeddingDataModule(FashionMNIST(pool_size=2000, test_size=1000, seed=0), EfficientNetLite0Encoder(),
                             cache_dir=str(tmp_path), batch_size=256, samples_per_epoch=2048)  # fmt: skip
    pool = dm.new_pool()
    idx = torch.randperm(2000, generator=torch.Generator().manual_seed(0))[:200]
    pool.add_labels(idx, dm.make_oracle().query(idx), round=0)
    dm.pool = pool
    L.seed_everything(0, verbose=False)
    model = ProxyClassifier(lr=0.003)
    trainer = L.Trainer(accelerator="cpu", max_epochs=10, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, datamodule=dm)
    acc = trainer.test(model, datamodule=dm, verbose=False)[0]["test/acc"]
    assert acc > 0.70  # measured 78.8 ± 1.3% for logistic regression with 200 random labels
