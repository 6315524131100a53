"""StochasticBatch, ClusterMargin and Seals against small brute-force references."""

import dataclasses
import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from lbench._faiss import HAS_FAISS
from lbench.errors import ConfigError
from lbench.strategies import ClusterMargin, Margin, PoolView, Seals, StochasticBatch
from lbench.strategies.cluster_margin import cluster_margin_select
from lbench.strategies.seals import knn_candidates
from lbench.strategies.stochastic import gumbel_top_k, stochastic_weights_log

from .conftest import check_contract, make_view


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- StochasticBatch


def test_weights_match_the_paper_formulas():
    s = torch.tensor([0.5, 0.1, 0.9, 0.5, 0.0])
    beta = 2.0
    torch.testing.assert_close(stochastic_weights_log(s, "power", beta).exp(), s.double() ** beta)
    torch.testing.assert_close(stochastic_weights_log(s, "softmax", beta), beta * s.double())
    ranks = torch.tensor([2.0, 4.0, 1.0, 2.0, 5.0], dtype=torch.float64)  # ties share the lowest rank
    torch.testing.assert_close(stochastic_weights_log(s, "softrank", beta).exp(), ranks**-beta)


def test_gumbel_top_k_is_sampling_without_replacement():
    """Ordered pairs of a budget-2 draw follow Plackett-Luce: P(i, j) = w_i / W * w_j / (W - w_i)."""
    w = np.array([1.0, 2.0, 3.0, 4.0])
    log_w = torch.log(torch.tensor(w, dtype=torch.float64))
    pairs = list(itertools.permutations(range(4), 2))
    counts = dict.fromkeys(pairs, 0)
    draws = 6000
    for seed in range(draws):
        i, j = gumbel_top_k(log_w, 2, _gen(seed)).tolist()
        counts[(i, j)] += 1
    total = w.sum()
    expected = [w[i] / total * w[j] / (total - w[i]) * draws for i, j in pairs]
    assert stats.chisquare([counts[p] for p in pairs], expected).pvalue > 0.001


def test_zero_weights_come_last():
    log_w = torch.log(torch.tensor([0.0, 1.0, 0.0, 2.0], dtype=torch.float64))
    for seed in range(20):
        picks = gumbel_top_k(log_w, 3, _gen(seed)).tolist()
        assert set(picks[:2]) == {1, 3} and picks[2] in (0, 2)


def test_stochastic_batch_probabilities_from_margins():
    """First pick of StochasticBatch(power, beta=1) on margin scores: P(i) = s_i / sum s, s = 1 - (p1 - p2)."""
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5], [0.7, 0.3]])
    view = PoolView(index=torch.tensor([40, 10, 30, 20]), probs=probs)
    s = (1 - (probs.max(1).values - probs.min(1).values)).double()
    counts = np.zeros(4)
    draws = 4000
    for seed in range(draws):
        first = int(StochasticBatch().select(view, 1, _gen(seed)))
        counts[[40, 10, 30, 20].index(first)] += 1
    assert stats.chisquare(counts, (s / s.sum()).numpy() * draws).pvalue > 0.001


def test_large_beta_is_top_b():
    view = make_view(n=50, seed=2)
    top = set(Margin().select(view, 5, _gen(0)).tolist())
    assert set(StochasticBatch(beta=200.0).select(view, 5, _gen(0)).tolist()) == top


@pytest.mark.parametrize("mode", ["power", "softmax", "softrank"])
@pytest.mark.parametrize("score", ["margin", "entropy", "confidence"])
def test_every_variant_keeps_the_contract(mode, score):
    view = make_view(n=40)
    out = StochasticBatch(score=score, mode=mode, beta=2.0).select(view, 11, _gen(1))
    check_contract(view, out, 11)


def test_invalid_stochastic_arguments():
    for kwargs in ({"score": "bald"}, {"mode": "top"}, {"beta": -1.0}, {"beta": float("nan")}):
        with pytest.raises(ConfigError):
            StochasticBatch(**kwargs)


# --------------------------------------------------------------------------- ClusterMargin


def _reference_cluster_margin(margins, clusters, index, budget, multiple, generator):
    """Python loops: candidates, groups by size (then smallest index), round-robin."""
    n = len(margins)
    m = min(n, max(budget, math.ceil(multiple * budget)))
    cand = sorted(range(n), key=lambda i: (margins[i], index[i]))[:m]
    cand = sorted(cand, key=lambda i: index[i])
    perm = torch.randperm(m, generator=generator).tolist()
    cand = [cand[p] for p in perm]
    groups = {}
    for i in cand:
        groups.setdefault(clusters[i], []).append(i)
    order = sorted(groups.values(), key=lambda g: (len(g), min(index[i] for i in g)))
    picks = []
    while len(picks) < budget:
        for g in order:
            if g and len(picks) < budget:
                picks.append(g.pop(0))
    return picks


@pytest.mark.parametrize("budget,multiple", [(5, 1.0), (7, 3.0), (12, 2.5), (40, 10.0)])
def test_cluster_margin_matches_reference(budget, multiple):
    g = _gen(budget)
    n = 60
    margins = torch.rand(n, generator=g).round(decimals=1)  # ties in margin, broken by global index
    clusters = torch.randint(0, 6, (n,), generator=g)
    index = 500 + 7 * torch.randperm(n, generator=g)
    for seed in range(3):
        ours = cluster_margin_select(margins, clusters, index, budget, multiple, _gen(seed)).tolist()
        ref = _reference_cluster_margin(
            margins.tolist(), clusters.tolist(), index.tolist(), budget, multiple, _gen(seed)
        )
        assert ours == ref


def test_cluster_margin_smallest_cluster_first():
    """Two clusters among the uncertain items, 3 items vs 30: the first round takes one of each, small first."""
    g = _gen(0)
    small = torch.tensor([0.0, 10.0]) + 0.1 * torch.randn(3, 2, generator=g)
    big = torch.tensor([10.0, 0.0]) + 0.1 * torch.randn(30, 2, generator=g)
    emb = torch.cat([small, big])
    probs = torch.tensor([[0.55, 0.45]]).repeat(33, 1)  # all equally uncertain
    view = PoolView(index=torch.arange(100, 133), probs=probs, embeddings=emb)
    picks = ClusterMargin(n_clusters=2, candidate_multiple=20, use_faiss=False).select(view, 8, _gen(0)).tolist()
    is_small = [p < 103 for p in picks]
    assert is_small[:2] == [True, False]
    assert sum(is_small) == 3  # the small cluster is exhausted after three rounds


# --------------------------------------------------------------------------- Seals


@pytest.mark.parametrize(
    "use_faiss", [False, pytest.param(True, marks=pytest.mark.skipif(not HAS_FAISS, reason="no faiss"))]
)
def test_knn_candidates_match_brute_force(use_faiss):
    x, q = torch.randn(80, 5, generator=_gen(1)), torch.randn(6, 5, generator=_gen(2))
    d = torch.cdist(q.double(), x.double())
    expected = sorted({int(i) for row in d.argsort(dim=1)[:, :7] for i in row})
    assert knn_candidates(x, q, 7, use_faiss=use_faiss).tolist() == expected


def test_seals_runs_the_base_strategy_on_the_neighbours():
    view = make_view(n=80, d=5, n_labeled=4, seed=3)
    rows = knn_candidates(view.embeddings, view.labeled_embeddings, 6, use_faiss=False)
    sub = dataclasses.replace(view, index=view.index[rows], probs=view.probs[rows], embeddings=view.embeddings[rows])
    expected = Margin().select(sub, 5, _gen(0))
    ours = Seals("Margin", k=6, use_faiss=False).select(view, 5, _gen(0))
    assert sorted(ours.tolist()) == sorted(expected.tolist())


def test_seals_without_labeled_or_too_few_neighbours_uses_the_whole_pool():
    view = make_view(n=30, n_labeled=2)
    no_lab = dataclasses.replace(
        view, labeled_index=None, labeled_labels=None, labeled_embeddings=None, labeled_probs=None
    )
    assert torch.equal(Seals(k=3, use_faiss=False).select(no_lab, 4, _gen(0)), Margin().select(no_lab, 4, _gen(0)))
    assert torch.equal(Seals(k=1, use_faiss=False).select(view, 5, _gen(0)), Margin().select(view, 5, _gen(0)))


def test_invalid_seals_arguments():
    with pytest.raises(ConfigError):
        Seals("NoSuchStrategy")
    with pytest.raises(ConfigError):
        Seals("Galaxy")
    with pytest.raises(ConfigError):
        Seals(k=0)
