"""Coreset (Sener & Savarese, 2018): greedy k-center selection in embedding space.

Each pick takes the candidate farthest (Euclidean) from everything labeled, pending or picked so
far. Pending items (requested from a person, not yet labeled) are centres like the labeled ones:
they are in flight, so a second selection before their labels come back does not re-cover their
regions. The running minimum of the squared distance to that set starts from the labeled and
pending embeddings (computed in ``chunk_size x chunk_size`` matmul tiles, or by faiss' exact 1-NN
search when asked for) and is updated with one ``O(n d)`` pass per pick via ``||a||² + ||b||² - 2 a·b``.

faiss is opt-in (``use_faiss=True``): on the 2-core CI machine faiss-cpu 1.15.1 ``knn(k=1)`` took 8-16 s
for 100k x 5k x 512 where the torch tiles took 2.2 s, so the default (``None``) uses torch.

Ties go to the lowest row position (``argmax``). Without a labeled set (and nothing pending), the
first center is drawn uniformly at random from the generator: there is nothing to be far from yet,
and a fixed rule (say the point nearest the mean) would always start from the same item.

Memory, on top of the inputs: a float32 copy of the embeddings only when they are not already
contiguous float32 (or float64), one matrix of the labeled and pending embeddings together only when
items are pending, three length-``n`` vectors and tiles of at most ``chunk_size²`` values in the
initial pass.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lbench._faiss import require_faiss
from lbench.errors import check_positive_int
from lbench.strategies._kernels import sq_norms
from lbench.strategies._order import canonical_view, from_canonical
from lbench.strategies.base import PoolView, QueryStrategy

__all__ = ["Coreset", "k_center_greedy", "min_sq_dist_to_set"]

_DEFAULT_CHUNK = 4096


def _as_compute(x: Tensor, device: torch.device | None = None) -> Tensor:
    """``x`` as a contiguous float32 tensor (float64 stays float64), without copying when it already is."""
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return x.to(device=device or x.device, dtype=dtype).contiguous()


def min_sq_dist_to_set(x: Tensor, ref: Tensor, chunk_size: int | None = None, use_faiss: bool | None = None) -> Tensor:
    """Squared Euclidean distance from every row of ``x`` to its nearest row of ``ref``.

    Args:
        x: ``[n, d]`` query points.
        ref: ``[m, d]`` reference points (``m > 0``).
        chunk_size: Tile side of the torch path (``None``: 4096); temporaries hold ``chunk_size²`` values.
        use_faiss: ``True``: faiss exact 1-NN on the CPU (CUDA tensors go through host memory; raises
            ImportError without faiss); ``False`` or ``None`` (default): torch matmul tiles, which were
            faster than faiss-cpu in our measurements (see the module docstring).

    Returns:
        ``[n]`` squared distances (clamped at 0), dtype of ``x`` after :func:`_as_compute`.
    """
    x = _as_compute(x)
    ref = _as_compute(ref, x.device).to(x.dtype)
    if ref.shape[0] == 0 or ref.shape[1] != x.shape[1]:
        raise ValueError(f"reference set must be [m > 0, {x.shape[1]}], got {tuple(ref.shape)}")
    if use_faiss:
        faiss = require_faiss()
        xq = x.detach().cpu().float().contiguous()
        xb = ref.detach().cpu().float().contiguous()
        dist, _ = faiss.knn(xq, xb, 1)
        return dist[:, 0].to(device=x.device, dtype=x.dtype).clamp_min_(0.0)
    size = chunk_size or _DEFAULT_CHUNK
    ref_norm = sq_norms(ref)
    out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for s in range(0, x.shape[0], size):
        xc = x[s : s + size]
        best = torch.full((xc.shape[0],), float("inf"), dtype=x.dtype, device=x.device)
        for r in range(0, ref.shape[0], size):
            tile = torch.addmm(ref_norm[None, r : r + size], xc, ref[r : r + size].T, alpha=-2.0)
            torch.minimum(best, tile.amin(dim=1), out=best)
        out[s : s + size] = best.add_(sq_norms(xc)).clamp_min_(0.0)
    return out


def k_center_greedy(
    embeddings: Tensor,
    labeled_embeddings: Tensor | None,
    budget: int,
    chunk_size: int | None = None,
    use_faiss: bool | None = None,
    generator: torch.Generator | None = None,
    pending_embeddings: Tensor | None = None,
) -> Tensor:
    """Greedy k-center: repeatedly take the candidate farthest from the labeled, pending and chosen points.

    Args:
        embeddings: ``[n, d]`` candidate embeddings (CPU or CUDA).
        labeled_embeddings: ``[m, d]`` embeddings of the labeled set, or ``None``/empty.
        budget: Number of picks, ``0 < budget <= n``.
        chunk_size: Tile side of the initial distance pass (see :func:`min_sq_dist_to_set`).
        use_faiss: Use faiss for the initial pass (see :func:`min_sq_dist_to_set`).
        generator: Draws the first center when there is no labeled or pending set (default: seed 0).
        pending_embeddings: ``[p, d]`` embeddings of the pending items (requested, not yet labeled),
            or ``None``/empty; they are centres exactly like the labeled ones.

    Returns:
        ``[budget]`` int64 distinct row positions in the order picked, on the device of ``embeddings``.

    Raises:
        ValueError: ``budget`` is out of range or the shapes do not match.
    """
    from lbench.strategies.sharded import sharded_k_center

    n = embeddings.shape[0]
    if not 0 < budget <= n:
        raise ValueError(f"budget must be in [1, {n}], got {budget}")
    if pending_embeddings is not None and pending_embeddings.shape[0] > 0:
        # pending centres after the labeled ones: the same picks as if they were labeled
        sets = [t for t in (labeled_embeddings, pending_embeddings) if t is not None and t.shape[0] > 0]
        labeled_embeddings = torch.cat([t.to(device=embeddings.device, dtype=torch.float64) for t in sets])
    return sharded_k_center(
        budget,
        generator,
        embeddings=embeddings,
        labeled_embeddings=labeled_embeddings,
        chunk_size=chunk_size,
        use_faiss=use_faiss,
        group=False,
    )


class Coreset(QueryStrategy):
    """Coreset selection: greedy k-center over the candidates' embeddings.

    Uses ``view.labeled_embeddings`` and ``view.pending_embeddings`` (items requested, not yet
    labeled) as the initial centers when the view has them; otherwise the first center is drawn at
    random from the generator.

    Time ``O(N m d)`` for the initial pass to the ``m`` labeled and pending items plus ``O(B N d)`` for
    the picks, memory ``O(N)`` vectors (plus a float32 copy of the embeddings when they are not
    contiguous float32/64). Across ``W`` ranks (:func:`lbench.strategies.sharded.sharded_k_center`):
    ``O(B N d / W)`` per rank and ``O(B (W + d))`` communication; streamed: ``O(N)`` memory plus one block.

    Args:
        chunk_size: Tile side of the initial distance pass to the labeled set.
        use_faiss: Use faiss for that pass (``None``/``False``: torch tiles; see the module docstring).
    """

    requires_embeddings = True

    def __init__(self, chunk_size: int = _DEFAULT_CHUNK, use_faiss: bool | None = None) -> None:
        check_positive_int(chunk_size, "Coreset chunk_size")
        self.chunk_size = chunk_size
        self.use_faiss = use_faiss

    def _select(self, view: PoolView, budget: int, generator: torch.Generator) -> Tensor:
        assert view.embeddings is not None  # checked by select()
        view, perm = canonical_view(view)  # picks independent of the order of the pool's rows
        return from_canonical(self._select_sorted(view, budget, generator), perm)

    def select_sharded(
        self,
        index: Any,
        embeddings: Any,
        budget: int,
        generator: torch.Generator,
        labeled_embeddings: Tensor | None = None,
        group: Any = None,
        stream: bool = True,
    ) -> Tensor:
        """Coreset over this rank's embedding shard, exact over all ranks' shards (the hook for a sharded round).

        Every rank passes its shard (``index.npy``, ``embeddings.npy``, e.g. memory-mapped) and the same
        labeled (and pending) embeddings and generator seed; all ranks get the same ``[budget]`` global
        pool indices, equal to the single-process picks. See :mod:`lbench.strategies.sharded`.
        """
        from lbench.strategies.sharded import as_tensor, sharded_k_center

        check_positive_int(budget, "budget")
        idx = as_tensor(index).long()
        kwargs = {"chunks": [embeddings]} if stream else {"embeddings": as_tensor(embeddings)}
        return sharded_k_center(
            budget,
            generator,
            labeled_embeddings=labeled_embeddings,
            index=idx,
            chunk_size=self.chunk_size,
            use_faiss=self.use_faiss,
            group=group,
            **kwargs,
        )

    def _select_sorted(self, view: PoolView, budget: int, generator: torch.Generator) -> Tensor:
        assert view.embeddings is not None
        pending = self._pending_rows(view, "embeddings")
        return k_center_greedy(
            view.embeddings,
            view.labeled_embeddings,
            budget,
            chunk_size=self.chunk_size,
            use_faiss=self.use_faiss,
            generator=generator,
            pending_embeddings=None if pending is None else pending[0],
        )
