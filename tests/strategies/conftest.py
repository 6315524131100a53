import torch

from lbench.strategies.base import PoolView


def make_view(n=40, k=4, d=8, n_labeled=6, seed=0, offset=1000):
    """A view whose global indices are not 0..n-1 (so position/index mix-ups fail)."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(n, k, generator=g) * 2, dim=1)
    emb = torch.randn(n, d, generator=g)
    index = offset + 3 * torch.randperm(n, generator=g)
    return PoolView(
        index=index,
        probs=probs,
        embeddings=emb,
        labeled_index=torch.arange(n_labeled),
        labeled_labels=torch.arange(n_labeled) % k,
        labeled_embeddings=torch.randn(n_labeled, d, generator=g),
        labeled_probs=torch.softmax(torch.randn(n_labeled, k, generator=g), dim=1),
    )


def check_contract(view, out, budget):
    """Distinct, exactly ``budget``, unlabeled global indices from the view."""
    assert out.shape == (budget,) and out.dtype == torch.long
    assert len(set(out.tolist())) == budget
    assert set(out.tolist()) <= set(view.index.tolist())
    if view.labeled_index is not None:
        assert not set(out.tolist()) & set(view.labeled_index.tolist())


def toy_oracle(view):
    """A label callback for interactive strategies: a fixed label in ``[0, K)`` per global index."""
    k = view.num_classes
    return lambda index: (torch.as_tensor(index).long() * 7 + 3) % k


def select(strategy, view, budget, generator=None):
    """``strategy.select``, with a label callback for an interactive strategy (as a simulated run gives)."""
    if strategy.interactive:
        return strategy.select(view, budget, generator, oracle=toy_oracle(view))
    return strategy.select(view, budget, generator)
