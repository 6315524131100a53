"""GalaxyBatch: the batch-mode GALAXY variant (no label inside the batch), formerly ``Galaxy``."""

import numpy as np
import pytest
import torch

from lbench.errors import ConfigError
from lbench.strategies.base import PoolView
from lbench.strategies.galaxy import GalaxyBatch, galaxy_select
from tests.conftest import requires_gpu

from .conftest import check_contract


def galaxy_view(n_u=60, n_l=10, k=4, seed=0, labels=None, probs=None, device="cpu"):
    """Unlabeled and labeled global indices interleaved and shuffled (never 0..n-1)."""
    g = torch.Generator().manual_seed(seed)
    ids = 500 + 7 * torch.randperm(n_u + n_l, generator=g)
    if probs is None:
        probs = torch.softmax(torch.randn(n_u + n_l, k, generator=g) * 2, dim=1)
    if labels is None:
        labels = torch.randint(0, k, (n_l,), generator=g)
    return PoolView(
        index=ids[n_l:].to(device),
        probs=probs[n_l:].to(device),
        labeled_index=ids[:n_l].to(device),
        labeled_labels=labels.to(device),
        labeled_probs=probs[:n_l].to(device),
    )


def reference_galaxy(probs, labels, budget, seed):
    """Straightforward GALAXY batch selection with Python loops (same semantics and draws)."""
    p = probs.float().numpy()
    n, k = p.shape
    g = torch.Generator().manual_seed(seed)
    u = torch.randperm(n, generator=g).tolist()
    class_order = torch.randperm(k, generator=g).tolist()
    labels = labels.tolist()

    def score(i, c):
        other = max(p[i, j] for j in range(k) if j != c) if k > 1 else np.float32(0)
        return float(p[i, c] - other)

    queried, picks = set(), []
    for t in range(budget):
        c = class_order[t % k]
        line = sorted(range(n), key=lambda i: (-score(i, c), u[i]))
        lab_pos = [pos for pos, i in enumerate(line) if labels[i] >= 0]
        best = None
        for a, b in zip(lab_pos[:-1], lab_pos[1:], strict=True):
            differ = (labels[line[a]] == c) != (labels[line[b]] == c)
            clear = all(line[q] not in queried for q in range(a + 1, b))
            if differ and b - a >= 2 and clear and (best is None or b - a < best[1] - best[0]):
                best = (a, b)
        if best is not None:
            node = line[(best[0] + best[1]) // 2]
        else:
            free = [i for i in range(n) if labels[i] < 0 and i not in queried]
            node = min(free, key=lambda i: (abs(score(i, c)), u[i]))
        queried.add(node)
        picks.append(node)
    return picks


def test_contract_and_determinism():
    view = galaxy_view()
    out = GalaxyBatch().select(view, 15, torch.Generator().manual_seed(3))
    check_contract(view, out, 15)
    assert torch.equal(out, GalaxyBatch().select(view, 15, torch.Generator().manual_seed(3)))


def test_budget_equals_pool():
    view = galaxy_view(n_u=25)
    out = GalaxyBatch().select(view, 25, torch.Generator().manual_seed(0))
    check_contract(view, out, 25)


@pytest.mark.parametrize("case", ["one_label", "one_hot", "both", "no_labeled"])
def test_degenerate_inputs(case):
    n_u, n_l, k = 30, 8, 3
    g = torch.Generator().manual_seed(1)
    probs = torch.softmax(torch.randn(n_u + n_l, k, generator=g), dim=1)
    labels = None
    if case in ("one_label", "both"):
        labels = torch.full((n_l,), 2)
    if case in ("one_hot", "both"):
        probs = torch.nn.functional.one_hot(torch.zeros(n_u + n_l, dtype=torch.long), k).float()
    if case == "no_labeled":
        n_l, labels, probs = 0, torch.zeros(0, dtype=torch.long), probs[n_l:]
    view = galaxy_view(n_u=n_u, n_l=n_l, k=k, probs=probs, labels=labels)
    out = GalaxyBatch().select(view, 12, torch.Generator().manual_seed(0))
    check_contract(view, out, 12)


@pytest.mark.parametrize(
    ("n", "k", "n_l", "budget", "seed", "rounded"),
    [(40, 3, 8, 12, 0, False), (50, 4, 15, 20, 1, False), (30, 2, 6, 10, 2, False), (45, 5, 20, 25, 3, True)],
)
def test_matches_reference(n, k, n_l, budget, seed, rounded):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(n, k, generator=g) * 2, dim=1)
    if rounded:  # many exact ties in the margins
        probs = (probs * 4).round() / 4 + 1e-3
        probs = probs / probs.sum(1, keepdim=True)
    labels = torch.full((n,), -1)
    labeled = torch.randperm(n, generator=g)[:n_l]
    labels[labeled] = torch.randint(0, k, (n_l,), generator=g)
    out = galaxy_select(probs, labels, budget, torch.Generator().manual_seed(seed + 10))
    assert out.tolist() == reference_galaxy(probs, labels, budget, seed + 10)


def test_bisects_the_shortest_gap_then_falls_back_to_margin():
    # Class-0 line is nodes 0..10; labels: 0 -> class 0, 6 and 10 -> class 1: the only gap is (0, 6).
    p0 = 1 - torch.arange(11) / 10
    probs = torch.stack([p0, 1 - p0], dim=1)
    labels = torch.full((11,), -1)
    labels[0], labels[6], labels[10] = 0, 1, 1
    out = galaxy_select(probs, labels, 3, torch.Generator().manual_seed(0))
    # Midpoint 3; then the gap holds a queried node, so margin order: |s| = 0 at node 5, then 4.
    assert out.tolist() == [3, 5, 4]


def test_errors():
    view = galaxy_view()
    no_probs = PoolView(
        index=view.index, probs=view.probs, labeled_index=view.labeled_index, labeled_labels=view.labeled_labels
    )
    with pytest.raises(ConfigError):
        GalaxyBatch().select(no_probs, 3)
    bad = galaxy_view(labels=torch.full((10,), 7))
    with pytest.raises(ConfigError):
        GalaxyBatch().select(bad, 3)
    with pytest.raises(ConfigError):
        GalaxyBatch().select(PoolView(index=view.index, probs=view.probs), 3)


@pytest.mark.gpu
@requires_gpu
def test_gpu_matches_cpu():
    cpu = GalaxyBatch().select(galaxy_view(n_u=200, n_l=30), 40, torch.Generator().manual_seed(5))
    gpu = GalaxyBatch().select(galaxy_view(n_u=200, n_l=30, device="cuda"), 40, torch.Generator().manual_seed(5))
    assert gpu.device.type == "cuda"
    assert torch.equal(cpu, gpu.cpu())
