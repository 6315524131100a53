import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from lbench.errors import ConfigError
from lbench.modules import BaseTask
from lbench.ssl import FlexMatch


class Tiny(BaseTask):
    """The smallest task: a fixed 2-d identity 'encoder' and a linear head."""

    def __init__(self, num_classes: int = 2, ssl: FlexMatch | None = None) -> None:
        super().__init__(ssl=ssl)

    def configure_models(self) -> None:
        self.head = nn.Linear(2, self.hparams.num_classes)
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(2))
            self.head.bias.zero_()

    def features(self, x):
        return x * 1.0

    def classify(self, h):
        return self.head(h)


def rows(x, y):
    return [{"x": x[i], "y": y[i], "index": torch.tensor(i)} for i in range(len(y))]


def test_base_is_abstract():
    with pytest.raises(TypeError):
        BaseTask()


def test_metrics_are_cloned_per_stage():
    task = Tiny()
    task.configure_model()
    names = {stage: set(getattr(task, f"{stage}_metrics").keys()) for stage in ("train", "val", "test")}
    for stage, keys in names.items():
        assert keys == {f"{stage}/{m}" for m in ("acc", "balanced_acc", "macro_f1", "min_class_acc")}
    task.val_metrics.update(torch.tensor([0, 1]), torch.tensor([0, 1]))
    task.test_metrics.update(torch.tensor([0, 0]), torch.tensor([0, 1]))
    assert float(task.val_metrics.compute()["val/acc"]) == 1.0
    assert float(task.test_metrics.compute()["test/acc"]) == 0.5  # separate states


def test_validate_test_predict_through_a_trainer(tmp_path):
    # the identity head predicts argmax(x): class 0 right 3/3, class 1 right 1/2
    x = torch.tensor([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    y = torch.tensor([0, 0, 0, 1, 1])
    loader = DataLoader(rows(x, y), batch_size=2)
    t = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                  default_root_dir=tmp_path)  # fmt: skip
    task = Tiny()
    val = t.validate(task, dataloaders=loader, verbose=False)[0]
    assert val["val/acc"] == pytest.approx(0.8) and val["val/balanced_acc"] == pytest.approx(0.75)
    assert val["val/min_class_acc"] == pytest.approx(0.5)
    test = t.test(task, dataloaders=loader, verbose=False)[0]
    assert set(test) == {"test/acc", "test/balanced_acc", "test/macro_f1", "test/min_class_acc"}
    out = t.predict(task, dataloaders=loader)
    assert set(out[0]) == {"index", "probs", "embeddings"}
    assert torch.allclose(torch.cat([o["probs"] for o in out]), x.softmax(-1))
    assert torch.equal(torch.cat([o["embeddings"] for o in out]), x)


def test_ssl_argument_forms():
    assert Tiny().ssl is None and Tiny().hparams.ssl is None
    fm = FlexMatch(p_cutoff=0.8)
    task = Tiny(num_classes=2, ssl=fm)
    assert task.ssl is fm and task.hparams.ssl == fm.config()  # plain values in hparams
    rebuilt = Tiny(num_classes=2, ssl=task.hparams.ssl)  # as load_from_checkpoint passes it
    assert isinstance(rebuilt.ssl, FlexMatch) and rebuilt.ssl.p_cutoff == 0.8
    task.configure_model()
    assert fm.num_classes == 2  # filled from the module
    with pytest.raises(ConfigError):
        Tiny(ssl=0.95)
