import pytest
import torch

from lbench.errors import BudgetError, ConfigError
from lbench.strategies import Confidence, Entropy, Margin, PoolView, Random
from lbench.strategies.uncertainty import entropy_scores, margin_scores

from .conftest import check_contract, make_view

STRATEGIES = [Random(), Margin(), Confidence(), Entropy()]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.name)
@pytest.mark.parametrize("budget", [1, 7, 40])
def test_contract(strategy, budget):
    view = make_view()
    picked = strategy.select(view, budget, torch.Generator().manual_seed(3))
    check_contract(view, picked, budget)
    again = strategy.select(view, budget, torch.Generator().manual_seed(3))
    assert torch.equal(picked, again)


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.name)
def test_one_class(strategy):
    view = make_view(k=1)
    picked = strategy.select(view, 5, torch.Generator().manual_seed(0))
    assert len(set(picked.tolist())) == 5


def test_random_depends_on_seed():
    view = make_view()
    a = Random().select(view, 10, torch.Generator().manual_seed(0))
    b = Random().select(view, 10, torch.Generator().manual_seed(1))
    assert not torch.equal(a, b)


def test_margin_picks_smallest_margins():
    probs = torch.tensor([[0.9, 0.1], [0.55, 0.45], [0.7, 0.3], [0.5, 0.5]])
    view = PoolView(index=torch.tensor([10, 11, 12, 13]), probs=probs)
    assert sorted(Margin().select(view, 2).tolist()) == [11, 13]
    assert torch.allclose(margin_scores(probs), torch.tensor([-0.8, -0.1, -0.4, 0.0]))


def test_entropy_and_confidence_order():
    probs = torch.tensor([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.6, 0.2, 0.2]])
    view = PoolView(index=torch.tensor([5, 6, 7]), probs=probs)
    assert Entropy().select(view, 1).tolist() == [6]
    assert Confidence().select(view, 2).tolist() == [6, 7]
    assert entropy_scores(probs)[1] == pytest.approx(torch.log(torch.tensor(3.0)).item(), rel=1e-5)


def test_ties_broken_at_random_by_seed():
    view = PoolView(index=torch.arange(100, 200), probs=torch.full((100, 2), 0.5))
    a = Margin().select(view, 5, torch.Generator().manual_seed(0))
    b = Margin().select(view, 5, torch.Generator().manual_seed(1))
    assert not torch.equal(a, b)


@pytest.mark.parametrize("budget", [0, -3])
def test_bad_budget(budget):
    with pytest.raises(BudgetError):
        Random().select(make_view(), budget)


def test_budget_larger_than_pool_warns_and_returns_all():
    view = make_view(n=5)
    with pytest.warns(UserWarning, match="exceeds"):
        picked = Margin().select(view, 9)
    assert sorted(picked.tolist()) == sorted(view.index.tolist())


def test_missing_embeddings_is_a_config_error():
    class NeedsEmb(Random):
        requires_embeddings = True

    view = PoolView(index=torch.arange(3), probs=torch.full((3, 2), 0.5))
    with pytest.raises(ConfigError, match="needs embeddings"):
        NeedsEmb().select(view, 1)


def test_names():
    assert Margin().name == "margin" and Random().name == "random"


def test_view_validates_shapes():
    with pytest.raises(ValueError):
        PoolView(index=torch.arange(3), probs=torch.zeros(4, 2))
