"""GlobalBatchSampler: one process = a shuffled DataLoader; ranks split each global batch."""

import pytest
import torch
from torch.utils.data import DataLoader, RandomSampler

from lbench.data.sampling import GlobalBatchSampler, rank_slice
from lbench.errors import ConfigError


@pytest.mark.parametrize(("n", "batch", "num_samples", "drop_last"), [(23, 5, None, False), (10, 4, 27, True)])
def test_one_rank_gives_the_shuffled_loaders_batches_from_the_same_random_stream(n, batch, num_samples, drop_last):
    torch.manual_seed(7)
    if num_samples is None:
        ref = [b.tolist() for b in DataLoader(range(n), batch_size=batch, shuffle=True, drop_last=drop_last)]
    else:
        sampler = RandomSampler(range(n), num_samples=num_samples)
        ref = [b.tolist() for b in DataLoader(range(n), batch_size=batch, sampler=sampler, drop_last=drop_last)]
    after_ref = torch.rand(1)
    torch.manual_seed(7)
    ours = [
        b.tolist() for b in DataLoader(range(n), batch_sampler=GlobalBatchSampler(n, batch, num_samples, drop_last))
    ]
    assert ours == ref and torch.equal(torch.rand(1), after_ref)  # the same draws from the global generator


def test_ranks_split_every_global_batch():
    torch.manual_seed(3)
    whole = list(GlobalBatchSampler(23, 6))
    parts = []
    for rank in range(3):
        torch.manual_seed(3)
        parts.append(list(GlobalBatchSampler(23, 6, rank=rank, world=3)))
    assert len(whole) == 4 and all(len(p) == 4 for p in parts)  # 6, 6, 6, 5: the last still splits over 3
    for t, batch in enumerate(whole):
        assert sum((p[t] for p in parts), []) == batch
        assert max(len(p[t]) for p in parts) - min(len(p[t]) for p in parts) <= 1


def test_a_last_batch_smaller_than_the_ranks_is_dropped_and_tiny_batches_refused():
    torch.manual_seed(0)
    assert [len(b) for b in GlobalBatchSampler(9, 4, rank=0, world=2)] == [2, 2]  # the 1-item tail cannot split
    assert rank_slice(5, 0, 2) == slice(0, 3) and rank_slice(5, 1, 2) == slice(3, 5)
    with pytest.raises(ConfigError, match="cannot be split over 4 ranks"):
        GlobalBatchSampler(10, 3, rank=0, world=4)
