import math

import numpy as np
import pytest
import torch

from lbench.errors import ConfigError
from lbench.strategies.bait import Bait, bait_select, pca_reduce
from lbench.strategies.base import PoolView
from tests.conftest import requires_gpu

from .conftest import check_contract


def bait_view(n_u=40, n_l=8, k=3, d=6, seed=0, probs=None, device="cpu", dtype=torch.float32):
    """Unlabeled and labeled global indices interleaved and shuffled (never 0..n-1)."""
    g = torch.Generator().manual_seed(seed)
    ids = 300 + 5 * torch.randperm(n_u + n_l, generator=g)
    if probs is None:
        probs = torch.softmax(torch.randn(n_u + n_l, k, generator=g) * 2, dim=1)
    emb = torch.randn(n_u + n_l, d, generator=g, dtype=dtype)
    return PoolView(
        index=ids[n_l:].to(device),
        probs=probs[n_l:].to(device),
        embeddings=emb[n_l:].to(device),
        labeled_index=ids[:n_l].to(device),
        labeled_labels=torch.zeros(n_l, dtype=torch.long, device=device),
        labeled_embeddings=emb[:n_l].to(device),
        labeled_probs=probs[:n_l].to(device),
    )


def reference_bait(probs, emb, lprobs, lemb, budget, pca_dim, lamb=1.0, oversample=2.0):
    """BAIT with explicit K*d Fisher matrices, brute-force greedy forward then backward steps."""
    p = np.concatenate([lprobs, probs]).astype(np.float64)
    p = p / p.sum(1, keepdims=True)
    x = np.concatenate([lemb, emb]).astype(np.float64)
    x = x - x.mean(0)
    evals, evecs = np.linalg.eigh(x.T @ x / len(x))
    h = x @ evecs[:, np.argsort(-evals)[:pca_dim]]
    fishers = [np.kron(np.diag(pi) - np.outer(pi, pi), np.outer(hi, hi)) for pi, hi in zip(p, h, strict=True)]
    target = sum(fishers) / len(fishers)
    n_l = len(lprobs)
    info = lamb * np.eye(len(target)) + sum(fishers[:n_l], np.zeros_like(target))
    cand = fishers[n_l:]
    chosen = []
    for _ in range(min(len(cand), max(budget, math.ceil(oversample * budget)))):
        vals = {i: np.trace(np.linalg.solve(info + cand[i], target)) for i in range(len(cand)) if i not in chosen}
        best = min(vals, key=vals.get)
        chosen.append(best)
        info = info + cand[best]
    while len(chosen) > budget:
        vals = {j: np.trace(np.linalg.solve(info - cand[j], target)) for j in chosen}
        worst = min(vals, key=vals.get)
        chosen.remove(worst)
        info = info - cand[worst]
    return sorted(chosen)


def test_contract_and_determinism():
    view = bait_view()
    out = Bait(pca_dim=4).select(view, 6, torch.Generator().manual_seed(2))
    check_contract(view, out, 6)
    assert torch.equal(out, Bait(pca_dim=4).select(view, 6, torch.Generator().manual_seed(2)))


def test_budget_equals_pool():
    view = bait_view(n_u=12)
    out = Bait(pca_dim=3).select(view, 12, torch.Generator().manual_seed(0))
    check_contract(view, out, 12)


@pytest.mark.parametrize("case", ["concentrated", "one_hot", "single_class", "no_labeled", "no_pca"])
def test_degenerate_inputs(case):
    n_u, n_l, k = 30, 6, 4
    probs, pca_dim = None, 3
    if case == "concentrated":
        probs = torch.softmax(torch.tensor([30.0, 0, 0, 0]).repeat(n_u + n_l, 1), dim=1)
    if case == "one_hot":
        probs = torch.nn.functional.one_hot(torch.zeros(n_u + n_l, dtype=torch.long), k).float()
    if case == "single_class":
        probs, k = torch.ones(n_u + n_l, 1), 1
    if case == "no_labeled":
        n_l = 0
    if case == "no_pca":
        pca_dim = None
    view = bait_view(n_u=n_u, n_l=n_l, k=k, probs=probs)
    out = Bait(pca_dim=pca_dim).select(view, 7, torch.Generator().manual_seed(0))
    check_contract(view, out, 7)


@pytest.mark.parametrize(
    ("k", "d", "pca_dim", "n_l", "n_u", "budget"),
    [(3, 6, 3, 5, 30, 4), (4, 5, 5, 0, 20, 5), (2, 8, 4, 7, 25, 6), (5, 10, 3, 10, 40, 7)],
)
def test_matches_reference(k, d, pca_dim, n_l, n_u, budget):
    g = torch.Generator().manual_seed(k * 100 + n_u)
    probs = torch.softmax(torch.randn(n_u, k, generator=g, dtype=torch.float64) * 2, 1)
    emb = torch.randn(n_u, d, generator=g, dtype=torch.float64)
    lprobs = torch.softmax(torch.randn(n_l, k, generator=g, dtype=torch.float64) * 2, 1)
    lemb = torch.randn(n_l, d, generator=g, dtype=torch.float64)
    out = bait_select(probs, emb, lprobs, lemb, budget, torch.Generator().manual_seed(0), pca_dim=pca_dim)
    expected = reference_bait(probs.numpy(), emb.numpy(), lprobs.numpy(), lemb.numpy(), budget, pca_dim)
    assert sorted(out.tolist()) == expected


def test_pca_reduce_matches_numpy():
    x = torch.randn(50, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = pca_reduce(x, 3)
    xc = (x - x.mean(0)).numpy()
    evals, evecs = np.linalg.eigh(xc.T @ xc / 50)
    ref = xc @ evecs[:, np.argsort(-evals)[:3]]
    np.testing.assert_allclose(np.abs(ours.numpy()), np.abs(ref), atol=1e-10)  # up to axis signs


def test_errors():
    view = bait_view()
    no_lab = PoolView(index=view.index, probs=view.probs, embeddings=view.embeddings, labeled_index=view.labeled_index)
    with pytest.raises(ConfigError):
        Bait().select(no_lab, 3)
    with pytest.raises(ConfigError):
        Bait().select(PoolView(index=view.index, probs=view.probs), 3)
    for kwargs in ({"pca_dim": 0}, {"lamb": 0.0}, {"oversample": 0.5}, {"chunk_size": 0}):
        with pytest.raises(ConfigError):
            Bait(**kwargs)


@pytest.mark.gpu
@requires_gpu
def test_gpu_matches_cpu():
    cpu = Bait(pca_dim=8).select(bait_view(n_u=300, n_l=40, k=5, d=16), 20, torch.Generator().manual_seed(1))
    view = bait_view(n_u=300, n_l=40, k=5, d=16, device="cuda")
    gpu = Bait(pca_dim=8).select(view, 20, torch.Generator().manual_seed(1))
    assert gpu.device.type == "cuda"
    assert sorted(cpu.tolist()) == sorted(gpu.cpu().tolist())
