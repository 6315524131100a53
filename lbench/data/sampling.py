"""One global batch sequence, whatever the number of DDP ranks.

Lightning's default under DDP gives each rank a ``DistributedSampler`` shard and the loader's batch
size per rank: the effective batch grows with the number of ranks and the order of items changes,
so a run moved from one GPU to two is another experiment. :class:`GlobalBatchSampler` draws the
permutation exactly as a shuffled ``DataLoader`` does in one process (a seed from the global torch
generator, ``torch.randperm``), shared from rank 0, cuts it into the same global batches, and gives
each rank its contiguous part of every global batch: DDP's gradient average over the ranks is then
the gradient of the global batch (exactly, when the ranks' parts have equal sizes).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from lbench.errors import ConfigError

__all__ = ["GlobalBatchSampler", "rank_slice"]


def rank_slice(size: int, rank: int, world: int) -> slice:
    """Rank ``rank``'s contiguous part of ``size`` items split over ``world`` ranks (sizes differ by at most 1)."""
    base, extra = divmod(size, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


class GlobalBatchSampler(Sampler[list[int]]):
    """Batches of pool rows: this rank's part of each global batch of a shuffled epoch.

    With ``world == 1`` it yields exactly the batches of ``DataLoader(dataset, batch_size,
    shuffle=True, drop_last)`` (or of a ``RandomSampler`` with ``num_samples``), drawn at the same
    point of the global random stream.

    Args:
        length: Number of rows of the dataset.
        batch_size: Global batch size (all ranks together).
        num_samples: Rows per epoch (None: ``length``; more than ``length`` repeats whole
            permutations, as ``RandomSampler(num_samples=...)`` does).
        drop_last: Drop a last global batch smaller than ``batch_size``.
        rank: This process's rank.
        world: Number of ranks.

    Raises:
        ConfigError: A global batch smaller than the number of ranks (a rank would get no rows).
    """

    def __init__(
        self,
        length: int,
        batch_size: int,
        num_samples: int | None = None,
        drop_last: bool = False,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if batch_size < world:
            raise ConfigError(f"a batch of {batch_size} cannot be split over {world} ranks: raise batch_size")
        self.length, self.batch_size, self.drop_last = length, batch_size, drop_last
        self.num_samples = length if num_samples is None else num_samples
        self.rank, self.world = rank, world

    def _sizes(self) -> list[int]:
        full, last = divmod(self.num_samples, self.batch_size)
        sizes = [self.batch_size] * full
        if last and not self.drop_last and last >= self.world:  # a rank cannot take an empty part
            sizes.append(last)
        return sizes

    def __len__(self) -> int:
        return len(self._sizes())

    def _seed(self) -> int:
        seed = int(torch.empty((), dtype=torch.int64).random_().item())  # as RandomSampler draws it
        if self.world > 1 and dist.is_available() and dist.is_initialized():
            box = [seed]
            dist.broadcast_object_list(box, src=0)  # every rank cuts the same permutation
            seed = int(box[0])
        return seed

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator()
        g.manual_seed(self._seed())
        n = self.length
        parts = [torch.randperm(n, generator=g) for _ in range(self.num_samples // n)]
        if self.num_samples % n:
            parts.append(torch.randperm(n, generator=g)[: self.num_samples % n])
        order = torch.cat(parts).tolist() if parts else []
        start = 0
        for size in self._sizes():
            batch = order[start : start + size]
            start += size
            yield batch[rank_slice(size, self.rank, self.world)]
