"""Pending items (requested from a person, not yet labeled) across every strategy.

Diversity strategies (BADGE, Coreset, TypiClust, BAIT) count them as already chosen, so a second
``select`` before the labels come back does not re-cover the first batch's regions; the others
ignore them. With nothing pending (``None`` or empty), every strategy behaves as before.
"""

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
    PoolView,
    QueryStrategy,
    Random,
    Seals,
    StochasticBatch,
    TypiClust,
)

from .conftest import check_contract, make_view, select

DIVERSITY = [Badge(), Coreset(), TypiClust(use_faiss=False), Bait()]
OTHERS = [
    Random(),
    Margin(),
    Confidence(),
    Entropy(),
    Galaxy(),
    GalaxyBatch(),
    StochasticBatch(),
    ClusterMargin(use_faiss=False),
    Seals(use_faiss=False),
]
STRATEGIES = DIVERSITY + OTHERS
# Bait without PCA: centring two clusters on the pool mean makes their embeddings antiparallel, and
# h h^T (so the Fisher information) the same for both; raw embeddings keep their directions apart.
CLUSTER_STRATEGIES = [Badge(), Coreset(), TypiClust(use_faiss=False), Bait(pca_dim=None)]


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _ids(s):
    return s.name


def _check_pending_contract(view, out, budget):
    check_contract(view, out, budget)
    if view.pending_index is not None:
        assert not set(out.tolist()) & set(view.pending_index.tolist())


def _with_pending(view, rows):
    """Move candidate ``rows`` (positions) of ``view`` to its pending part (after any pending already there)."""
    rows = torch.as_tensor(rows, dtype=torch.long)
    keep = torch.ones(view.num_unlabeled, dtype=torch.bool)
    keep[rows] = False

    def join(old, new):
        return new if old is None else torch.cat([old, new])

    return dataclasses.replace(
        view,
        index=view.index[keep],
        probs=view.probs[keep],
        embeddings=view.embeddings[keep],
        pending_index=join(view.pending_index, view.index[rows]),
        pending_probs=join(view.pending_probs, view.probs[rows]),
        pending_embeddings=join(view.pending_embeddings, view.embeddings[rows]),
    )


def _empty_pending(view):
    d = view.embeddings.shape[1]
    return dataclasses.replace(
        view,
        pending_index=view.index[:0],
        pending_probs=view.probs[:0],
        pending_embeddings=torch.empty(0, d),
    )


def _pending_as_labeled(view):
    """The same view with the pending items appended to the labeled ones."""
    p = view.num_pending
    return PoolView(
        index=view.index,
        probs=view.probs,
        embeddings=view.embeddings,
        labeled_index=torch.cat([view.labeled_index, view.pending_index]),
        labeled_labels=torch.cat([view.labeled_labels, torch.zeros(p, dtype=torch.long)]),
        labeled_embeddings=torch.cat([view.labeled_embeddings, view.pending_embeddings]),
        labeled_probs=torch.cat([view.labeled_probs, view.pending_probs]),
    )


def two_clusters(n_per=40, seed=0, n_labeled_b=0):
    """Cluster A (rows ``< n_per``): tight around ``10 e1``, predicted class 0; cluster B: wider, around
    ``10 e2``, predicted class 1 less surely. ``n_labeled_b`` items at B's centre are labeled. Global ids are shuffled.

    Far apart (squared gradient-embedding distance about 70 between the clusters, about 0.2 inside B),
    so a D² draw lands in the far cluster with probability above 99%; the seeds are fixed anyway."""
    g = _gen(seed)
    a = torch.tensor([10.0, 0, 0, 0]) + 0.05 * torch.randn(n_per, 4, generator=g)
    b = torch.tensor([0.0, 10, 0, 0]) + 0.3 * torch.randn(n_per, 4, generator=g)
    emb = torch.cat([a, b])
    # B is predicted less surely than A, so B holds the largest gradient norms (BADGE's first pick)
    probs = torch.tensor([[0.6, 0.4], [0.45, 0.55]]).repeat_interleave(n_per, dim=0)
    ids = 700 + 3 * torch.randperm(2 * n_per + n_labeled_b, generator=g)
    lab_emb = torch.tensor([0.0, 10, 0, 0]).repeat(n_labeled_b, 1)
    view = PoolView(
        index=ids[: 2 * n_per],
        probs=probs,
        embeddings=emb,
        labeled_index=ids[2 * n_per :],
        labeled_labels=torch.ones(n_labeled_b, dtype=torch.long),
        labeled_embeddings=lab_emb,
        labeled_probs=torch.tensor([0.4, 0.6]).repeat(n_labeled_b, 1),
    )
    cluster = {int(i): int(r >= n_per) for r, i in enumerate(ids[: 2 * n_per])}  # global id -> 0 (A) or 1 (B)
    return view, cluster


def test_all_strategies_are_covered():
    assert {type(s) for s in STRATEGIES} == set(QueryStrategy.__subclasses__()) | {Confidence, Entropy, Margin}
    assert len(STRATEGIES) == 13


@pytest.mark.parametrize("strategy", STRATEGIES, ids=_ids)
@pytest.mark.parametrize("budget", [1, 6])
def test_empty_pending_is_no_pending(strategy, budget):
    """``make_view`` gives empty pending tensors when nothing is pending: the picks are those of ``None``."""
    view = make_view(n=40, seed=budget)
    assert view.pending_index is None
    expected = select(strategy, view, budget, _gen(5))
    assert torch.equal(select(strategy, _empty_pending(view), budget, _gen(5)), expected)


@pytest.mark.parametrize("strategy", OTHERS, ids=_ids)
def test_pending_is_ignored_by_non_diversity_strategies(strategy):
    pending = _with_pending(make_view(n=50, seed=1), [3, 8, 20])
    no_pending = dataclasses.replace(pending, pending_index=None, pending_probs=None, pending_embeddings=None)
    out = select(strategy, pending, 7, _gen(2))
    _check_pending_contract(pending, out, 7)
    assert torch.equal(out, select(strategy, no_pending, 7, _gen(2)))


@pytest.mark.parametrize("strategy", DIVERSITY, ids=_ids)
def test_contract_with_pending(strategy):
    view = _with_pending(make_view(n=50, seed=2), [0, 5, 9, 30])
    out = select(strategy, view, 8, _gen(1))
    _check_pending_contract(view, out, 8)
    assert torch.equal(out, select(strategy, view, 8, _gen(1)))


@pytest.mark.parametrize("strategy", CLUSTER_STRATEGIES, ids=_ids)
def test_pending_cluster_counts_as_covered(strategy):
    """Three items of cluster A are pending: the next batch comes from cluster B only.

    Before pending items were shown to the strategies (the same candidates, nothing pending), the
    batch went back to cluster A too.
    """
    view, cluster = two_clusters()
    pending = _with_pending(view, [0, 1, 2])
    out = select(strategy, pending, 3, _gen(0))
    _check_pending_contract(pending, out, 3)
    assert [cluster[i] for i in out.tolist()] == [1, 1, 1]
    ignored = dataclasses.replace(pending, pending_index=None, pending_probs=None, pending_embeddings=None)
    assert 0 in [cluster[i] for i in select(strategy, ignored, 3, _gen(0)).tolist()]


@pytest.mark.parametrize("strategy", DIVERSITY[:3], ids=_ids)
def test_second_select_before_labels_moves_to_the_other_cluster(strategy):
    """select B1 (one item), mark it pending, select B2: B2 lies in the other cluster, where a select
    that does not see B1 (the behaviour before) stays in B1's cluster."""
    view, cluster = two_clusters(n_labeled_b=1)
    b1 = select(strategy, view, 1, _gen(0))
    rows = [int((view.index == i).nonzero()) for i in b1.tolist()]
    after = _with_pending(view, rows)
    b2 = select(strategy, after, 1, _gen(0))
    _check_pending_contract(after, b2, 1)
    assert cluster[int(b2)] != cluster[int(b1)]
    ignored = dataclasses.replace(after, pending_index=None, pending_probs=None, pending_embeddings=None)
    assert cluster[int(select(strategy, ignored, 1, _gen(0)))] == cluster[int(b1)]


@pytest.mark.parametrize("strategy", [Coreset(), TypiClust(use_faiss=False), Bait(pca_dim=4)], ids=_ids)
def test_pending_items_count_as_labeled(strategy):
    """Coreset centres, TypiClust's covered clusters and BAIT's Fisher information: pending = labeled."""
    view = _with_pending(make_view(n=60, d=6, seed=3), [1, 4, 7, 11, 40])
    out = select(strategy, view, 9, _gen(3))
    assert torch.equal(out, select(strategy, _pending_as_labeled(view), 9, _gen(3)))


@pytest.mark.parametrize("strategy", DIVERSITY, ids=_ids)
def test_pending_rows_without_their_tensors_are_refused(strategy):
    view = _with_pending(make_view(n=30), [2, 3])
    for missing in ("pending_embeddings", "pending_probs"):
        if missing == "pending_probs" and not isinstance(strategy, Badge | Bait):
            continue  # Coreset and TypiClust read only the embeddings
        with pytest.raises(ConfigError, match=f"needs the {missing.split('_')[1]} of the pending items"):
            select(strategy, dataclasses.replace(view, **{missing: None}), 3, _gen(0))


@pytest.mark.parametrize("strategy", STRATEGIES, ids=_ids)
@pytest.mark.parametrize("field", ["pending_probs", "pending_embeddings"])
def test_non_finite_pending_values_are_refused(strategy, field):
    view = _with_pending(make_view(n=30), [2, 3, 4])
    bad = getattr(view, field).clone()
    bad[1, 0] = float("nan")
    with pytest.raises(ConfigError, match=rf"non-finite .* view\.{field} \(1 of 3 rows\)"):
        select(strategy, dataclasses.replace(view, **{field: bad}), 3, _gen(0))


def test_view_validates_pending_shapes():
    view = make_view(n=10, k=3, d=4)
    ok = dataclasses.replace(
        view, pending_index=torch.tensor([90, 91]), pending_probs=torch.rand(2, 3), pending_embeddings=torch.rand(2, 4)
    )
    assert ok.num_pending == 2 and view.num_pending == 0
    bad = [
        {"pending_index": torch.zeros(2, 1, dtype=torch.long)},
        {"pending_index": torch.tensor([90, 91]), "pending_probs": torch.rand(3, 3)},
        {"pending_index": torch.tensor([90, 91]), "pending_probs": torch.rand(2, 2)},
        {"pending_index": torch.tensor([90, 91]), "pending_embeddings": torch.rand(2)},
        {"pending_index": torch.tensor([90, 91]), "pending_embeddings": torch.rand(1, 4)},
        {"pending_embeddings": torch.rand(2, 4)},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError, match="pending"):
            dataclasses.replace(view, **kwargs)
