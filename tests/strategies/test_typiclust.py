import numpy as np
import pytest
import torch

from lbench._faiss import HAS_FAISS
from lbench.errors import ConfigError
from lbench.strategies.base import PoolView
from lbench.strategies.typiclust import TypiClust, kmeans, typicality, typiclust_pick, typiclust_select
from tests.conftest import requires_gpu

from .conftest import check_contract

FAISS_MODES = [False, pytest.param(True, marks=pytest.mark.skipif(not HAS_FAISS, reason="faiss not installed"))]


def blobs(n_per=30, centers=((0, 0), (10, 0), (0, 10), (10, 10)), seed=0, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    c = torch.tensor(centers, dtype=torch.float32)
    x = torch.cat([ci + scale * torch.randn(n_per, c.shape[1], generator=g) for ci in c])
    return x, torch.arange(len(c)).repeat_interleave(n_per)


def typi_view(emb, labeled_rows, seed=0, device="cpu"):
    """Labeled rows of ``emb`` go to the labeled part; global ids are shuffled (never 0..n-1)."""
    n = emb.shape[0]
    ids = 900 + 11 * torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    lab = torch.zeros(n, dtype=torch.bool)
    lab[list(labeled_rows)] = True
    return PoolView(
        index=ids[~lab].to(device),
        probs=torch.full((int((~lab).sum()), 2), 0.5, device=device),
        embeddings=emb[~lab].to(device),
        labeled_index=ids[lab].to(device),
        labeled_labels=torch.zeros(int(lab.sum()), dtype=torch.long, device=device),
        labeled_embeddings=emb[lab].to(device),
    )


def reference_typicality(x, k_nn):
    x = x.double().numpy()
    n = len(x)
    k = min(k_nn, n // 2)
    out = []
    for i in range(n):
        d = sorted(float(np.linalg.norm(x[i] - x[j])) for j in range(n) if j != i)
        out.append(1.0 / np.mean(d[:k]) if k else np.inf)
    return np.array(out)


def reference_pick(x, clusters, is_labeled, budget, seed, k_nn, min_size):
    g = torch.Generator().manual_seed(seed)
    num = int(clusters.max()) + 1
    cluster_tie = torch.randperm(num, generator=g).tolist()
    node_tie = torch.randperm(len(x), generator=g).tolist()
    clusters, is_labeled = clusters.tolist(), is_labeled.tolist()
    members = {c: [i for i in range(len(x)) if clusters[i] == c] for c in range(num)}
    size = {c: len(m) for c, m in members.items()}
    existing = {c: sum(is_labeled[i] for i in m) for c, m in members.items()}
    pos = {c: i for i, c in enumerate(cluster_tie)}
    ranking = sorted(range(num), key=lambda c: (size[c] <= min_size, existing[c], -size[c], pos[c]))
    queues = {}
    for c in range(num):
        if not members[c]:
            continue
        typ = dict(zip(members[c], reference_typicality(x[members[c]], k_nn), strict=True))
        free = [i for i in members[c] if not is_labeled[i]]
        queues[c] = sorted(free, key=lambda i: (-typ[i], node_tie[i]))
    picks, r = [], 0
    while len(picks) < budget:
        for c in ranking:
            if len(picks) < budget and c in queues and len(queues[c]) > r:
                picks.append(queues[c][r])
        r += 1
    return picks


def test_typicality_matches_brute_force():
    x = torch.randn(37, 5, generator=torch.Generator().manual_seed(0))
    for k_nn in (1, 4, 20, 50):
        np.testing.assert_allclose(typicality(x, k_nn, chunk=8).numpy(), reference_typicality(x, k_nn), rtol=1e-4)
    assert torch.isinf(typicality(x[:1], 20)).all()


@pytest.mark.parametrize(("budget", "min_size", "seed"), [(5, 5, 0), (23, 5, 1), (40, 2, 2), (60, 0, 3)])
def test_pick_matches_brute_force(budget, min_size, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(90, 4, generator=g)
    clusters = torch.randint(0, 9, (90,), generator=g)
    clusters[clusters == 8] = 7  # cluster 8 empty
    clusters[:3] = 6  # ties in sizes are likely; the reference breaks them the same way
    is_labeled = torch.rand(90, generator=g) < 0.2
    out = typiclust_pick(x, clusters, is_labeled, budget, torch.Generator().manual_seed(seed), 6, min_size)
    assert out.tolist() == reference_pick(x, clusters, is_labeled, budget, seed, 6, min_size)


@pytest.mark.parametrize("use_faiss", FAISS_MODES)
def test_kmeans_finds_separated_blobs(use_faiss):
    x, truth = blobs()
    assign = kmeans(x, 4, torch.Generator().manual_seed(0), n_iter=20, use_faiss=use_faiss)
    # each found cluster is one blob
    pairs = set(zip(assign.tolist(), truth.tolist(), strict=True))
    assert len(pairs) == 4 and len({a for a, _ in pairs}) == 4


@pytest.mark.parametrize("use_faiss", FAISS_MODES)
def test_picks_typical_points_of_uncovered_blobs(use_faiss):
    x, truth = blobs(n_per=40, seed=1)
    labeled = [0, 1, 40]  # blobs 0 and 1 are covered
    view = typi_view(x, labeled)
    out = TypiClust(use_faiss=use_faiss).select(view, 2, torch.Generator().manual_seed(0))
    rows = [int((view.index == i).nonzero()) for i in out.tolist()]
    picked = view.embeddings[rows]
    blob_of = torch.cdist(picked, torch.tensor([[0.0, 0], [10, 0], [0, 10], [10, 10]])).argmin(1)
    assert sorted(blob_of.tolist()) == [2, 3]
    # the most typical point of a blob sits near its centre
    assert (torch.cdist(picked, torch.tensor([[0.0, 10], [10, 10]])).min(1).values < 0.6).all()


@pytest.mark.parametrize("use_faiss", FAISS_MODES)
def test_contract_and_determinism(use_faiss):
    x, _ = blobs(n_per=25, seed=2)
    view = typi_view(x, range(0, 100, 9))
    a = TypiClust(use_faiss=use_faiss).select(view, 17, torch.Generator().manual_seed(4))
    check_contract(view, a, 17)
    assert torch.equal(a, TypiClust(use_faiss=use_faiss).select(view, 17, torch.Generator().manual_seed(4)))


@pytest.mark.parametrize("use_faiss", FAISS_MODES)
def test_budget_equals_pool_and_capped_clusters(use_faiss):
    x, _ = blobs(n_per=10, seed=3)
    view = typi_view(x, [0, 5, 12])
    out = TypiClust(max_clusters=6, use_faiss=use_faiss).select(view, 37, torch.Generator().manual_seed(0))
    check_contract(view, out, 37)


@pytest.mark.parametrize("case", ["identical", "one_cluster_labeled", "no_labeled"])
def test_degenerate_inputs(case):
    x, _ = blobs(n_per=8, seed=4)
    labeled = [0, 1, 2]
    if case == "identical":
        x = torch.ones_like(x)
    if case == "one_cluster_labeled":
        x = torch.cat([torch.zeros(8, 2), x[8:]])
        labeled = list(range(8))
    if case == "no_labeled":
        labeled = []
    view = typi_view(x, labeled)
    out = TypiClust(use_faiss=False).select(view, 9, torch.Generator().manual_seed(0))
    check_contract(view, out, 9)


def test_errors():
    x, _ = blobs(n_per=5)
    view = typi_view(x, [0, 1])
    no_emb = PoolView(index=view.index, probs=view.probs, embeddings=view.embeddings, labeled_index=view.labeled_index)
    with pytest.raises(ConfigError):
        TypiClust().select(no_emb, 2)
    with pytest.raises(ConfigError):
        TypiClust().select(PoolView(index=view.index, probs=view.probs), 2)
    for kwargs in ({"max_clusters": 0}, {"k_nn": 0}, {"n_iter": 0}, {"min_cluster_size": -1}):
        with pytest.raises(ConfigError):
            TypiClust(**kwargs)
    with pytest.raises(ValueError):
        typiclust_select(view.embeddings, None, 0, torch.Generator())


@pytest.mark.gpu
@requires_gpu
def test_gpu_runs_and_is_deterministic():
    x, _ = blobs(n_per=50, seed=5)
    view = typi_view(x, range(0, 200, 13), device="cuda")
    a = TypiClust().select(view, 20, torch.Generator().manual_seed(1))
    check_contract(view, a, 20)
    assert a.device.type == "cuda"
    assert torch.equal(a, TypiClust().select(view, 20, torch.Generator().manual_seed(1)))
