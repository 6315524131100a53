"""Coreset: greedy k-center against a brute-force reference, and the strategy contract."""

import pytest
import torch

from lbench._faiss import HAS_FAISS
from lbench.errors import ConfigError
from lbench.strategies.base import PoolView
from lbench.strategies.coreset import Coreset, k_center_greedy, min_sq_dist_to_set


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _points(n, d, seed=0):
    return torch.randn(n, d, generator=_gen(seed))


def _view(n=40, d=6, n_labeled=5, k=3, seed=0):
    emb = _points(n, d, seed)
    probs = torch.softmax(torch.randn(n, k, generator=_gen(seed + 1)), dim=1)
    index = torch.randperm(n, generator=_gen(seed + 2)) * 2 + 5  # not arange
    lab = _points(n_labeled, d, seed + 3) if n_labeled else None
    lab_index = torch.arange(n_labeled) * 2 + 4 if n_labeled else None
    return PoolView(index=index, probs=probs, embeddings=emb, labeled_index=lab_index, labeled_embeddings=lab)


def _brute_force(x, labeled, budget, first=None):
    """Python-loop k-center on a float64 pairwise distance matrix."""
    x = x.double()
    dist = torch.cdist(x, x)
    picks = []
    if labeled is not None:
        min_d = torch.cdist(x, labeled.double()).min(dim=1).values.tolist()
    else:
        picks.append(first)
        min_d = dist[first].tolist()
    while len(picks) < budget:
        best = max((i for i in range(len(min_d)) if i not in picks), key=lambda i: (min_d[i], -i))
        picks.append(best)
        min_d = [min(a, b) for a, b in zip(min_d, dist[best].tolist(), strict=True)]
    return picks


@pytest.mark.parametrize(
    "use_faiss", [False, pytest.param(True, marks=pytest.mark.skipif(not HAS_FAISS, reason="no faiss"))]
)
@pytest.mark.parametrize("chunk_size", [None, 7])
def test_matches_brute_force_with_labeled(use_faiss, chunk_size):
    x, lab = _points(80, 5, seed=1), _points(9, 5, seed=2)
    ours = k_center_greedy(x, lab, 15, chunk_size=chunk_size, use_faiss=use_faiss)
    assert ours.tolist() == _brute_force(x, lab, 15)


def test_matches_brute_force_without_labeled():
    x = _points(70, 4, seed=3)
    for seed in range(3):
        ours = k_center_greedy(x, None, 12, generator=_gen(seed)).tolist()
        assert ours == _brute_force(x, None, 12, first=ours[0])
    firsts = {k_center_greedy(x, None, 1, generator=_gen(s)).item() for s in range(10)}
    assert len(firsts) > 1  # the first center is drawn from the generator


def test_empty_labeled_set_is_no_labeled_set():
    x = _points(30, 4, seed=4)
    a = k_center_greedy(x, torch.empty(0, 4), 5, generator=_gen(1))
    assert torch.equal(a, k_center_greedy(x, None, 5, generator=_gen(1)))


def test_min_sq_dist_to_set_paths_agree():
    x, ref = _points(300, 8, seed=5), _points(50, 8, seed=6)
    exact = torch.cdist(x.double(), ref.double()).min(dim=1).values.square()
    for chunk in (None, 16):
        torch.testing.assert_close(
            min_sq_dist_to_set(x, ref, chunk, use_faiss=False).double(), exact, rtol=1e-4, atol=1e-4
        )
    if HAS_FAISS:
        torch.testing.assert_close(min_sq_dist_to_set(x, ref, use_faiss=True).double(), exact, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n_labeled", [0, 5])
def test_contract_distinct_unlabeled_exact_budget(n_labeled):
    view = _view(n=40, n_labeled=n_labeled)
    picked = Coreset().select(view, 13, _gen(0))
    assert picked.shape == (13,) and picked.dtype == torch.long
    assert len(set(picked.tolist())) == 13
    assert set(picked.tolist()) <= set(view.index.tolist())


@pytest.mark.parametrize("n_labeled", [0, 5])
def test_deterministic_given_seed(n_labeled):
    view = _view(n=50, n_labeled=n_labeled)
    assert torch.equal(Coreset().select(view, 10, _gen(7)), Coreset().select(view, 10, _gen(7)))


@pytest.mark.parametrize("n_labeled", [0, 5])
def test_budget_equals_pool(n_labeled):
    view = _view(n=20, n_labeled=n_labeled)
    picked = Coreset().select(view, 20, _gen(0))
    assert sorted(picked.tolist()) == sorted(view.index.tolist())


def test_one_class_present():
    emb = _points(30, 4, seed=8)
    view = PoolView(index=torch.arange(100, 130), probs=torch.ones(30, 1), embeddings=emb)
    picked = Coreset().select(view, 9, _gen(0))
    assert len(set(picked.tolist())) == 9


def test_duplicates_never_repicked():
    x = _points(3, 4, seed=9).repeat(4, 1)  # 3 distinct points, 4 copies each
    picks = k_center_greedy(x, x[:1], 8).tolist()
    assert len(set(picks)) == 8
    assert sorted(picks[:2]) == [1, 2]  # the two points away from the labeled one, lowest positions first


def test_invalid_arguments():
    x = _points(5, 3)
    with pytest.raises(ValueError):
        k_center_greedy(x, None, 0)
    with pytest.raises(ValueError):
        k_center_greedy(x, _points(2, 4), 2)
    with pytest.raises(ConfigError):
        Coreset(chunk_size=-1)
    with pytest.raises(ConfigError):
        Coreset().select(PoolView(index=torch.arange(5), probs=torch.ones(5, 2)), 2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("n_labeled", [0, 5])
def test_cuda_matches_cpu(n_labeled):
    view = _view(n=200, d=16, n_labeled=n_labeled)
    lab = view.labeled_embeddings
    cuda_view = PoolView(
        index=view.index.cuda(),
        probs=view.probs.cuda(),
        embeddings=view.embeddings.cuda(),
        labeled_index=view.labeled_index,
        labeled_embeddings=None if lab is None else lab.cuda(),
    )
    picked = Coreset().select(cuda_view, 25, _gen(2))
    assert picked.device.type == "cuda"
    assert picked.cpu().tolist() == Coreset().select(view, 25, _gen(2)).tolist()
