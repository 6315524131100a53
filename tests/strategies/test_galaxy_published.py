"""Galaxy: the published GALAXY (Zhang et al., 2022), interactive: each pick's label is revealed before the next."""

import numpy as np
import pytest
import torch

from lbench.errors import ConfigError
from lbench.strategies import Galaxy, GalaxyBatch
from lbench.strategies.base import PoolView
from lbench.strategies.galaxy import galaxy_interactive_select
from tests.conftest import requires_gpu

from .conftest import check_contract


def reference_galaxy(probs, labels, truth, budget, seed, cases=None):
    """The paper's algorithm as a plain loop over a small pool (same random draws as ``Galaxy``).

    Per pick: draw the class graph, sort the pool by its margin score, bisect the shortest path
    between adjacent oppositely labeled nodes; when none is left, the unlabeled node nearest to a
    ("not k" above "k") cut edge; else one at random. The pick's true label is revealed at once.
    ``cases`` (a list) collects which of the three chose each pick.
    """
    cases = [] if cases is None else cases
    p = probs.float().numpy()
    n, k = p.shape
    g = torch.Generator().manual_seed(seed)
    u = torch.randperm(n, generator=g).tolist()
    labels, truth = list(labels.tolist()), truth.tolist()
    n_graphs = k if k > 2 else 1

    def score(i, c):
        other = max(p[i, j] for j in range(k) if j != c) if k > 1 else np.float32(0)
        return float(p[i, c] - other)

    picks = []
    for _ in range(budget):
        c = int(torch.randint(n_graphs, (1,), generator=g)) if n_graphs > 1 else 0
        line = sorted(range(n), key=lambda i: (-score(i, c), u[i]))
        is_c = [None if labels[i] < 0 else labels[i] == c for i in line]
        best, last = None, None  # shortest path: (upper, lower) line positions of labeled nodes
        for pos in range(n):
            if is_c[pos] is None:
                continue
            if last is not None and is_c[last] != is_c[pos] and pos - last >= 2:
                if best is None or pos - last < best[1] - best[0]:
                    best = (last, pos)
            last = pos
        if best is not None:
            node = line[(best[0] + best[1]) // 2]
            cases.append("bisect")
        else:
            near = []  # (distance, line position)
            for pos in range(n - 1):
                if is_c[pos] is False and is_c[pos + 1] is True:
                    above = [q for q in range(pos) if is_c[q] is None]
                    below = [q for q in range(pos + 2, n) if is_c[q] is None]
                    if above:
                        near.append((pos - above[-1], above[-1]))
                    if below:
                        near.append((below[0] - (pos + 1), below[0]))
            if near:
                node = line[min(near)[1]]
                cases.append("nearest")
            else:
                cases.append("random")
                free = [line[q] for q in range(n) if is_c[q] is None]
                node = free[int(torch.randint(len(free), (1,), generator=g))]
        labels[node] = truth[node]
        picks.append(node)
    return picks


def toy_pool(n, k, n_l, seed, noise=1.0, rounded=False):
    """Probabilities, pool labels (``-1`` unlabeled) and a ground truth that the model gets partly wrong."""
    g = torch.Generator().manual_seed(seed)
    truth = torch.randint(0, k, (n,), generator=g)
    logits = 2.0 * torch.nn.functional.one_hot(truth, k).float() + noise * torch.randn(n, k, generator=g)
    probs = torch.softmax(logits, dim=1)
    if rounded:  # many exact ties in the margins
        probs = (probs * 4).round() / 4 + 1e-3
        probs = probs / probs.sum(1, keepdim=True)
    labels = torch.full((n,), -1)
    labeled = torch.randperm(n, generator=g)[:n_l]
    labels[labeled] = truth[labeled]
    return probs, labels, truth


def _reveal(truth, log=None):
    def reveal(i):
        if log is not None:
            log.append(i)
        return int(truth[i])

    return reveal


@pytest.mark.parametrize(
    ("n", "k", "n_l", "budget", "seed", "noise", "rounded"),
    [
        (40, 3, 8, 12, 0, 1.0, False),
        (50, 4, 15, 30, 1, 2.0, False),
        (30, 2, 6, 20, 2, 1.5, False),  # two classes: one graph
        (45, 5, 20, 25, 3, 1.0, True),  # ties
        (36, 3, 2, 34, 4, 3.0, False),  # budget = nearly the pool: every case, down to the random one
        (25, 1, 3, 10, 5, 1.0, False),  # one class: no cut, random picks
        (30, 4, 0, 8, 6, 1.0, False),  # nothing labeled
    ],
)
def test_matches_reference(n, k, n_l, budget, seed, noise, rounded):
    probs, labels, truth = toy_pool(n, k, n_l, seed, noise, rounded)
    log = []
    out = galaxy_interactive_select(
        probs, labels, budget, torch.Generator().manual_seed(seed + 10), _reveal(truth, log)
    )
    cases = []
    assert out.tolist() == reference_galaxy(probs, labels, truth, budget, seed + 10, cases)
    assert log == out.tolist()  # one label request per pick, in pick order
    if seed in (2, 4):
        assert set(cases) == {"bisect", "nearest", "random"}


def test_each_pick_uses_the_labels_revealed_before_it():
    """Class-0 line is nodes 0..10; labels 0 -> class 0, 10 -> class 1: the path 0..10 is bisected again and again."""
    p0 = 1 - torch.arange(11) / 10
    probs = torch.stack([p0, 1 - p0], dim=1)
    labels = torch.full((11,), -1)
    labels[0], labels[10] = 0, 1
    truth = torch.tensor([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    out = galaxy_interactive_select(probs, labels, 4, torch.Generator().manual_seed(0), _reveal(truth))
    # 5 (class 0) -> path 5..10 -> 7 (class 1) -> path 5..7 -> 6 (class 0) -> cut (6, 7) found; the
    # only cut edge has "k" above "not k", so no nearest-node candidate: a random unlabeled node.
    assert out[:3].tolist() == [5, 7, 6] and out[3].item() in {1, 2, 3, 4, 8, 9}
    flipped = 1 - truth  # other labels revealed, other picks
    other = galaxy_interactive_select(probs, labels, 3, torch.Generator().manual_seed(0), _reveal(flipped))
    assert other.tolist() != out[:3].tolist()
    batch = GalaxyBatch().select(
        PoolView(index=torch.arange(1, 10), probs=probs[1:10], labeled_index=torch.tensor([0, 10]),
                 labeled_labels=torch.tensor([0, 1]), labeled_probs=probs[[0, 10]]),
        3, torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert batch.tolist() != out[:3].tolist()  # batch mode bisects once, then falls back to margin


def galaxy_view(n_u=60, n_l=10, k=4, seed=0, device="cpu"):
    """Unlabeled and labeled global indices interleaved and shuffled (never 0..n-1), and the pool's truth."""
    g = torch.Generator().manual_seed(seed)
    ids = 500 + 7 * torch.randperm(n_u + n_l, generator=g)
    probs, labels, truth = toy_pool(n_u + n_l, k, 0, seed)
    view = PoolView(
        index=ids[n_l:].to(device),
        probs=probs[n_l:].to(device),
        labeled_index=ids[:n_l].to(device),
        labeled_labels=truth[:n_l].to(device),
        labeled_probs=probs[:n_l].to(device),
    )
    by_id = torch.full((int(ids.max()) + 1,), -1)
    by_id[ids] = truth
    return view, by_id


def test_select_maps_positions_to_global_indices_and_asks_the_oracle():
    view, by_id = galaxy_view()
    asked = []

    def oracle(index):
        asked.append(index.tolist())
        return by_id[index.cpu()]

    out = Galaxy().select(view, 15, torch.Generator().manual_seed(3), oracle=oracle)
    check_contract(view, out, 15)
    assert asked == [[i] for i in out.tolist()]
    n_l = view.labeled_index.numel()
    probs_all = torch.cat([view.labeled_probs, view.probs])
    labels_all = torch.cat([view.labeled_labels, torch.full((view.num_unlabeled,), -1)])
    ids = torch.cat([view.labeled_index, view.index])
    expected = reference_galaxy(probs_all, labels_all, by_id[ids], 15, 3)
    assert out.tolist() == ids[expected].tolist() and min(expected) >= n_l
    again = Galaxy().select(view, 15, torch.Generator().manual_seed(3), oracle=lambda i: by_id[i])
    assert torch.equal(out, again)


def test_budget_equals_pool():
    view, by_id = galaxy_view(n_u=25)
    out = Galaxy().select(view, 25, torch.Generator().manual_seed(0), oracle=lambda i: by_id[i])
    check_contract(view, out, 25)


def test_without_an_oracle_it_refuses_in_one_line_naming_galaxy_batch():
    view, _ = galaxy_view()
    with pytest.raises(ConfigError, match="GalaxyBatch") as e:
        Galaxy().select(view, 3, torch.Generator().manual_seed(0))
    assert "\n" not in str(e.value) and "interactive" in str(e.value)
    assert Galaxy().interactive and not GalaxyBatch().interactive
    assert Galaxy().name == "galaxy" and GalaxyBatch().name == "galaxy_batch"


def test_bad_oracle_answers_and_views_are_refused():
    view, by_id = galaxy_view()
    with pytest.raises(ConfigError, match="outside"):
        Galaxy().select(view, 3, oracle=lambda i: torch.full_like(i, 9))
    with pytest.raises(ConfigError, match="2 labels"):
        Galaxy().select(view, 3, oracle=lambda i: torch.zeros(2, dtype=torch.long))
    no_probs = PoolView(
        index=view.index, probs=view.probs, labeled_index=view.labeled_index, labeled_labels=view.labeled_labels
    )
    with pytest.raises(ConfigError, match="probabilities on the labeled"):
        Galaxy().select(no_probs, 3, oracle=lambda i: by_id[i])
    with pytest.raises(ConfigError, match="labeled set"):
        Galaxy().select(PoolView(index=view.index, probs=view.probs), 3, oracle=lambda i: by_id[i])


@pytest.mark.gpu
@requires_gpu
def test_gpu_matches_cpu():
    view, by_id = galaxy_view(n_u=200, n_l=30)
    gpu_view, _ = galaxy_view(n_u=200, n_l=30, device="cuda")
    cpu = Galaxy().select(view, 40, torch.Generator().manual_seed(5), oracle=lambda i: by_id[i.cpu()])
    gpu = Galaxy().select(gpu_view, 40, torch.Generator().manual_seed(5), oracle=lambda i: by_id[i.cpu()])
    assert gpu.device.type == "cuda"
    assert torch.equal(cpu, gpu.cpu())
