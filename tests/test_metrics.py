import warnings

import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score
from torchmetrics.classification import MulticlassAccuracy

from lbench.metrics import BalancedAccuracy, MinClassAccuracy, classification_metrics


def sklearn_metrics(y, p, labels_present=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about classes predicted but absent from y_true
        recalls = recall_score(y, p, average=None, labels=labels_present, zero_division=0)
        return {
            "acc": accuracy_score(y, p),
            "balanced_acc": balanced_accuracy_score(y, p),
            "macro_f1": f1_score(y, p, average="macro", zero_division=0),
            "min_class_acc": recalls.min(),
        }


def imbalanced_batch():
    """Class 0: 10 items (9 right), class 1: 4 (3 right), class 2: 2 (1 right)."""
    y = torch.tensor([0] * 10 + [1] * 4 + [2] * 2)
    p = torch.tensor([0] * 9 + [1] + [1] * 3 + [0] + [2] + [0])
    return y, p


def computed(y, p, k, prefix="val/", split=1):
    metrics = classification_metrics(k, prefix=prefix)
    for yy, pp in zip(y.chunk(split), p.chunk(split), strict=True):
        metrics.update(pp, yy)
    return {key.removeprefix(prefix): float(v) for key, v in metrics.compute().items()}


def test_imbalanced_batch_matches_sklearn():
    y, p = imbalanced_batch()
    ours = computed(y, p, 3)
    ref = sklearn_metrics(y.numpy(), p.numpy())
    assert set(ours) == {"acc", "balanced_acc", "macro_f1", "min_class_acc"}
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, abs=1e-6), key
    # by hand, and distinct from one another (a swapped key would fail)
    assert ours["acc"] == pytest.approx(13 / 16)
    assert ours["balanced_acc"] == pytest.approx((0.9 + 0.75 + 0.5) / 3)
    assert ours["min_class_acc"] == pytest.approx(0.5)
    assert len({round(v, 6) for v in ours.values()}) == 4


def test_keys_carry_the_prefix_and_batches_accumulate():
    y, p = imbalanced_batch()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    metrics = classification_metrics(3, prefix="test/")
    assert set(metrics.keys()) == {"test/acc", "test/balanced_acc", "test/macro_f1", "test/min_class_acc"}
    assert computed(y[perm], p[perm], 3, prefix="test/", split=3) == pytest.approx(computed(y, p, 3))


def test_scores_are_argmaxed():
    y, p = imbalanced_batch()
    scores = torch.nn.functional.one_hot(p, 3).float() + 0.1 * torch.rand(len(p), 3)
    for cls in (BalancedAccuracy, MinClassAccuracy):
        a, b = cls(3), cls(3)
        a.update(p, y)
        b.update(scores, y)
        assert float(a.compute()) == float(b.compute())


def test_class_absent_from_targets_but_predicted():
    """K=4, class 3 never in the targets but predicted twice.

    torchmetrics' macro accuracy counts class 3 as recall 0; sklearn's balanced accuracy (and ours)
    averages over the classes present in y_true only. Macro F1 matches sklearn's default labels
    (the union of y_true and y_pred): class 3 counts with F1 = 0.
    """
    y, p = imbalanced_batch()
    p = p.clone()
    p[[0, 10]] = 3
    ours = computed(y, p, 4)
    ref = sklearn_metrics(y.numpy(), p.numpy(), labels_present=[0, 1, 2])
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, abs=1e-6), key
    tm_macro = MulticlassAccuracy(num_classes=4, average="macro")(p, y)
    assert float(tm_macro) == pytest.approx(3 / 4 * ref["balanced_acc"])  # the difference we avoid
    assert ours["balanced_acc"] != pytest.approx(float(tm_macro))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f1_all_k = f1_score(y.numpy(), p.numpy(), average="macro", labels=[0, 1, 2, 3], zero_division=0)
    assert ours["macro_f1"] == pytest.approx(f1_all_k)  # class 3 is in the union, so the same here


def test_class_absent_from_targets_and_predictions():
    """K=5 with class 3 and 4 never seen: left out of every macro average (sklearn's default labels)."""
    y, p = imbalanced_batch()
    ours = computed(y, p, 5)
    ref = sklearn_metrics(y.numpy(), p.numpy())
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, abs=1e-6), key
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f1_all_k = f1_score(y.numpy(), p.numpy(), average="macro", labels=range(5), zero_division=0)
    assert ours["macro_f1"] > f1_all_k  # not sklearn's labels=range(K) variant


def test_empty_and_invalid():
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert float(BalancedAccuracy(3).compute()) == 0.0
    m = MinClassAccuracy(3)
    with pytest.raises(ValueError):
        m.update(torch.tensor([0]), torch.tensor([3]))
    with pytest.raises(ValueError):
        m.update(torch.tensor([0]), torch.tensor([-1]))
