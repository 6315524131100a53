"""Every strategy refuses NaN or infinite probabilities and embeddings with one line."""

import dataclasses

import pytest
import torch

from lbench.errors import ConfigError
from lbench.strategies import (
    Badge,
    Bait,
    ClusterMargin,
    Confidence,
    Coreset,
    Entropy,
    Galaxy,
    GalaxyBatch,
    Margin,
    QueryStrategy,
    Random,
    Seals,
    StochasticBatch,
    TypiClust,
)

from .conftest import check_contract, make_view, select

STRATEGIES = [
    Random(),
    Margin(),
    Confidence(),
    Entropy(),
    Coreset(),
    Badge(),
    Bait(),
    Galaxy(),
    GalaxyBatch(),
    TypiClust(use_faiss=False),
    StochasticBatch(),
    ClusterMargin(use_faiss=False),
    Seals(use_faiss=False),
]


def test_all_strategies_are_covered():
    assert {type(s) for s in STRATEGIES} == set(QueryStrategy.__subclasses__()) | {Confidence, Entropy, Margin}
    assert len(STRATEGIES) == 13


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.name)
@pytest.mark.parametrize("field", ["probs", "embeddings", "labeled_embeddings"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_inputs_are_refused(strategy, field, value):
    view = make_view()
    bad = getattr(view, field).clone()
    bad[3, 1] = value
    bad[5, 0] = value
    view = dataclasses.replace(view, **{field: bad})
    expected = rf"'{strategy.name}' refuses non-finite .* view\.{field} \(2 of \d+ rows\)"
    with pytest.raises(ConfigError, match=expected) as e:
        select(strategy, view, 5, torch.Generator().manual_seed(0))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.name)
def test_finite_inputs_still_work(strategy):
    view = make_view()
    check_contract(view, select(strategy, view, 5, torch.Generator().manual_seed(0)), 5)
