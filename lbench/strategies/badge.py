"""BADGE: k-means++ seeding in the space of last-layer gradient embeddings.

The gradient embedding of candidate ``i`` is ``g_i = q_i ⊗ h_i`` with ``q_i = onehot(argmax p_i) - p_i``
and ``h_i`` its penultimate-layer embedding. It has ``K * d`` entries and is never built: the Kronecker
identity

    ``||g_i - g_j||² = ||q_i||²||h_i||² + ||q_j||²||h_j||² - 2 (q_i·q_j)(h_i·h_j)``

turns the distance of every candidate to one center into two matrix-vector products, ``O(n (K + d))``.

k-means++ (D² sampling) keeps a running minimum of the squared distance of every candidate to the
centers chosen so far. The first center is the candidate with the largest gradient norm. Each next
center is drawn with probability proportional to that running minimum. A chosen point has weight 0,
so it is never drawn again, and the origin is never treated as a center.

Pending items (requested from a person, not yet labeled) are centers chosen already: when there
are any, the running minimum starts from the squared distance of every candidate to its nearest
pending item (``min_p ||g_j - g_p||²``, computed block by block as ``[rows, pending]`` matrix
products of the same factors), and every pick, the first included, is a D² draw from it. So a
second selection before their labels come back continues the seeding instead of restarting it.

Memory, on top of the inputs: ``q`` (``n * K`` values in the storage dtype), a copy of the
embeddings only when they are not already contiguous in the storage dtype (``n * d`` values), a
handful of length-``n`` vectors (about ``29 n`` bytes: float32 norms, float64 running minima and
their cumulative sum, the two matrix-vector outputs) and temporaries of at most
``2 * chunk_size * K + 4096 * d`` float32 values plus ``13 * chunk_size`` bytes.

The selection loop itself lives in :mod:`lbench.strategies.sharded` (world size 1 here). Per pick it
runs two matrix-vector products over the whole factors (``q`` ``[n, K]`` and ``h`` ``[n, d]``, row-major,
in the storage dtype; one parallel region each), then fuses the distance, the rounding rule and the
running minimum in single-threaded sub-blocks of 16,384 rows that stay in cache, and one float64
cumulative sum for the draw. This formulation was picked by measurement on the 2-core Xeon
(``benchmarks/bench_scale.py``, ``docs/benchmarks.md``): separate row-major ``q``/``h`` with ``torch.mv``
matched or beat one ``[n, K + d]`` matrix times a ``[K + d, 2]`` block (float32: 2x slower; bfloat16:
equal), a transposed ``[K + d, n]`` layout (impossible to stream from row-major score shards) and
float16 storage (no fast CPU kernel: 2.5x slower than bfloat16); bfloat16 storage halves the bytes and
is the fastest on CPU. Many small parallel regions per pick (the previous per-chunk loop) slowed the
kernel several-fold on a shared 2-core machine; the elementwise work is below torch's parallel grain. With pending
items, also their factors (``n_p * (K + d)`` values) and blocks of at most ``5 * 2**20`` values
(``4096 x 256`` candidate-pending pairs) for the distances to them. Nothing of size ``n * K * d``
(or ``n * d`` in float32, for low-precision storage) is ever allocated.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from lbench.errors import ConfigError, check_positive_int
from lbench.strategies._order import canonical_view, from_canonical
from lbench.strategies.base import PoolView, QueryStrategy

__all__ = ["Badge", "badge_kmeanspp", "badge_sq_dist_to", "gradient_factors"]

StorageDtype = Literal["float32", "float16", "bfloat16"]
_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
_DEFAULT_CHUNK = 65536
_ROW_BLOCK, _CENTER_BLOCK = 4096, 256  # candidates x pending centers per block of distances
_REL_TOL_EPS = 8.0  # squared distances below this many eps of the norms count as 0


def _chunks(n: int, chunk_size: int | None) -> list[tuple[int, int]]:
    """Split ``range(n)`` into ``[start, end)`` pieces of at most ``chunk_size`` rows."""
    size = n if chunk_size is None else int(chunk_size)
    if size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size!r}")
    return [(s, min(n, s + size)) for s in range(0, n, size)]


def _compute_dtype(storage: torch.dtype) -> torch.dtype:
    """Accumulation dtype: float64 for float64 storage, float32 otherwise."""
    return torch.float64 if storage == torch.float64 else torch.float32


def gradient_factors(
    probs: Tensor,
    embeddings: Tensor,
    chunk_size: int | None = None,
    storage_dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Factors of the gradient embeddings ``g_i = q_i ⊗ h_i``, computed chunk by chunk.

    Args:
        probs: ``[n, K]`` class probabilities.
        embeddings: ``[n, d]`` penultimate-layer embeddings (same device as ``probs``).
        chunk_size: Rows processed at a time (``None``: all at once).
        storage_dtype: dtype of the returned ``q`` and ``h`` (default float32).

    Returns:
        ``(q, h, sq_norm)``: ``q = onehot(argmax p) - p`` ``[n, K]``, the embeddings ``h`` ``[n, d]``
        (the input itself when it already has the storage dtype and is contiguous) and the squared
        gradient norms ``||q_i||² ||h_i||²`` ``[n]`` of the stored (rounded) factors, in float32
        (float64 for float64 storage).
    """
    if probs.dim() != 2 or embeddings.dim() != 2 or probs.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"probs [n, K] and embeddings [n, d] expected, got {tuple(probs.shape)}, {tuple(embeddings.shape)}"
        )
    if probs.device != embeddings.device:
        raise ValueError(f"probs are on {probs.device} but embeddings on {embeddings.device}")
    sd = storage_dtype or torch.float32
    cd = _compute_dtype(sd)
    n, k = probs.shape
    dev = probs.device
    q = torch.empty((n, k), dtype=sd, device=dev)
    reuse = embeddings.dtype == sd and embeddings.is_contiguous()
    h = embeddings if reuse else torch.empty(embeddings.shape, dtype=sd, device=dev)
    sq_norm = torch.empty(n, dtype=cd, device=dev)
    for s, e in _chunks(n, chunk_size):
        p = probs[s:e].to(cd)
        qc = p.neg()
        qc.scatter_add_(1, p.argmax(dim=1, keepdim=True), torch.ones((e - s, 1), dtype=cd, device=dev))
        q[s:e] = qc
        if not reuse:
            h[s:e] = embeddings[s:e]
        torch.mul(_row_sq_norms(q[s:e], cd), _row_sq_norms(h[s:e], cd), out=sq_norm[s:e])
    return q, h, sq_norm


def _row_sq_norms(x: Tensor, dtype: torch.dtype, block: int = 4096) -> Tensor:
    """Squared row norms of ``x`` in ``dtype``, upcasting at most ``block`` rows at a time."""
    if x.dtype == dtype:
        return torch.linalg.vector_norm(x, dim=1).square_()
    out = torch.empty(x.shape[0], dtype=dtype, device=x.device)
    for s in range(0, x.shape[0], block):
        torch.linalg.vector_norm(x[s : s + block].to(dtype), dim=1, out=out[s : s + block])
    return out.square_()


def _sq_dist_to_row(
    q: Tensor, h: Tensor, sq_norm: Tensor, center: int, out: Tensor, chunks: list[tuple[int, int]]
) -> Tensor:
    """Write ``||g_j - g_center||²`` for every row ``j`` into ``out`` and return it.

    Values at or below ``_REL_TOL_EPS * eps(storage) * (||g_j||² + ||g_center||²)`` are rounding noise
    of the factorized formula (an exact duplicate of the center comes out at up to about 4 eps) and
    are set to exactly 0; this also clamps negatives.
    """
    qc, hc, gc = q[center], h[center], sq_norm[center]
    cd = out.dtype
    tol = _REL_TOL_EPS * torch.finfo(q.dtype).eps
    for s, e in chunks:
        a = torch.mv(q[s:e], qc).to(cd)
        b = torch.mv(h[s:e], hc).to(cd)
        o = out[s:e]
        torch.addcmul(sq_norm[s:e], a, b, value=-2.0, out=o)
        o.add_(gc)
        o.masked_fill_(o <= (sq_norm[s:e] + gc).mul_(tol), 0.0)
    return out


def _min_sq_dist_to_rows(
    q: Tensor,
    h: Tensor,
    sq_norm: Tensor,
    centers: tuple[Tensor, Tensor, Tensor],
    out: Tensor,
    chunks: list[tuple[int, int]],
) -> Tensor:
    """Write ``min_c ||g_j - g_c||²`` over the ``centers`` (their ``(q, h, sq_norm)``) into ``out``.

    The same formula and rounding rule as :func:`_sq_dist_to_row`, for many centers at once, in
    blocks of at most ``_ROW_BLOCK x _CENTER_BLOCK`` candidate-center pairs (two matrix products each).
    """
    qc, hc, gc = centers
    cd = out.dtype
    tol = _REL_TOL_EPS * torch.finfo(q.dtype).eps
    out.fill_(torch.inf)
    for s, e in chunks:
        for r in range(s, e, _ROW_BLOCK):
            rows = slice(r, min(e, r + _ROW_BLOCK))
            best = out[rows]
            for c in range(0, qc.shape[0], _CENTER_BLOCK):
                cols = slice(c, c + _CENTER_BLOCK)
                a = (q[rows] @ qc[cols].T).to(cd)
                b = (h[rows] @ hc[cols].T).to(cd)
                base = sq_norm[rows].unsqueeze(1) + gc[cols].unsqueeze(0)
                d = torch.addcmul(base, a, b, value=-2.0)
                d.masked_fill_(d <= base.mul_(tol), 0.0)
                torch.minimum(best, d.amin(dim=1), out=best)
    return out


def badge_sq_dist_to(
    probs: Tensor,
    embeddings: Tensor,
    center: int,
    chunk_size: int | None = None,
    storage_dtype: torch.dtype | None = None,
) -> Tensor:
    """Squared gradient-embedding distance of every row to row ``center``, without building ``g``.

    Args:
        probs: ``[n, K]`` class probabilities.
        embeddings: ``[n, d]`` embeddings.
        center: Row position of the center.
        chunk_size: Rows processed at a time (``None``: all at once).
        storage_dtype: dtype of the stored factors (default float32).

    Returns:
        ``[n]`` squared distances ``||g_j - g_center||²``; values within rounding noise of 0 (8 eps of the
        storage dtype times ``||g_j||² + ||g_center||²``) are exactly 0.
    """
    q, h, sq_norm = gradient_factors(probs, embeddings, chunk_size, storage_dtype)
    out = torch.empty_like(sq_norm)
    return _sq_dist_to_row(q, h, sq_norm, int(center), out, _chunks(q.shape[0], chunk_size))


def badge_kmeanspp(
    probs: Tensor,
    embeddings: Tensor,
    budget: int,
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
    storage_dtype: torch.dtype | None = None,
    pending_probs: Tensor | None = None,
    pending_embeddings: Tensor | None = None,
) -> Tensor:
    """k-means++ seeding over the implicit gradient embeddings (the BADGE selection).

    Works on CPU and CUDA tensors alike; the random draws come from ``generator`` (one uniform
    number per pick), so the result is deterministic given its seed. Each pick costs
    ``O(n (K + d))`` and one host-device synchronisation.

    Args:
        probs: ``[n, K]`` class probabilities of the candidates.
        embeddings: ``[n, d]`` their embeddings, on the same device.
        budget: Number of centers, ``0 < budget <= n``.
        generator: Source of randomness (default: a CPU generator seeded with 0).
        chunk_size: Rows processed at a time; bounds the temporaries (see the module docstring).
        storage_dtype: dtype in which ``q`` and ``h`` are stored and multiplied (float32 default;
            float16/bfloat16 halve the memory and bandwidth, but squared distances below about 1%
            (float16) or 6% (bfloat16) of ``||g_i||² + ||g_c||²`` then read as 0; float64 for exact
            reference runs).
        pending_probs: ``[n_p, K]`` probabilities of the pending items (requested, not yet
            labeled), or ``None``/empty: with them, the seeding starts from their gradient
            embeddings as centers already chosen, and the first pick is a D² draw too.
        pending_embeddings: ``[n_p, d]`` their embeddings (needed with ``pending_probs``).

    Returns:
        ``[budget]`` int64 distinct row positions, in the order they were chosen, on the device of
        ``probs``.

    Raises:
        ValueError: ``budget`` is out of range, the inputs are not finite, or ``pending_probs``
            come without ``pending_embeddings``.

    Warns:
        UserWarning: All candidates left are at distance 0 from the chosen centers (duplicates);
            the rest of the budget is then drawn uniformly from the unchosen candidates.
    """
    from lbench.strategies.sharded import sharded_kmeanspp

    n = probs.shape[0]
    if not 0 < budget <= n:
        raise ValueError(f"budget must be in [1, {n}], got {budget}")
    return sharded_kmeanspp(
        budget,
        generator,
        probs=probs,
        embeddings=embeddings,
        storage_dtype=storage_dtype,
        chunk_size=chunk_size,
        pending_probs=pending_probs,
        pending_embeddings=pending_embeddings,
        group=False,
    )


class Badge(QueryStrategy):
    """BADGE (Ash et al., 2020): diverse, uncertain batches by k-means++ on gradient embeddings.

    Pending items (requested, not yet labeled) are centers chosen already: the seeding continues
    from their gradient embeddings.

    Time ``O(B N (K + d))`` (one pass over the factors per pick, at the memory-bandwidth floor, plus
    an ``O(N)`` cumulative sum), memory ``N (K + d)`` values in the storage dtype plus ``O(N)``
    vectors (``N`` candidates, ``K`` classes, ``d`` embedding size, ``B`` budget). Across ``W`` ranks
    (:func:`lbench.strategies.sharded.sharded_kmeanspp`): ``O(B N (K + d) / W)`` per rank, ``O(B (W + K + d))``
    communication; streamed from disk: ``O(N)`` memory plus one block.

    Args:
        chunk_size: Rows processed at a time; bounds temporary memory (see the module docstring).
        storage_dtype: dtype of the stored gradient factors: ``"float32"`` (default), or
            ``"float16"``/``"bfloat16"`` to halve memory and bandwidth (bfloat16 is the fastest on CPU).
    """

    requires_embeddings = True

    def __init__(self, chunk_size: int = _DEFAULT_CHUNK, storage_dtype: StorageDtype = "float32") -> None:
        check_positive_int(chunk_size, "Badge chunk_size")
        if storage_dtype not in _STORAGE_DTYPES:
            raise ConfigError(f"Badge storage_dtype must be one of {sorted(_STORAGE_DTYPES)}, got {storage_dtype!r}")
        self.chunk_size = chunk_size
        self.storage_dtype = storage_dtype

    def _select(self, view: PoolView, budget: int, generator: torch.Generator) -> Tensor:
        assert view.embeddings is not None  # checked by select()
        view, perm = canonical_view(view)  # picks independent of the order of the pool's rows
        return from_canonical(self._select_sorted(view, budget, generator), perm)

    def select_sharded(
        self,
        index: Any,
        probs: Any,
        embeddings: Any,
        budget: int,
        generator: torch.Generator,
        group: Any = None,
        stream: bool = True,
        pending_probs: Tensor | None = None,
        pending_embeddings: Tensor | None = None,
        scratch: str | None = None,
    ) -> Tensor:
        """BADGE over this rank's score shard, exact over all ranks' shards (the hook for a sharded round).

        Every rank calls it with its shard (``index.npy``, ``probs.npy``, ``embeddings.npy``, e.g. as
        ``np.load(..., mmap_mode="r")``) and a generator seeded identically on every rank; all ranks
        get the same ``[budget]`` global pool indices. ``stream=True`` reads the factors chunk by chunk
        each pick (memory ``O(n_r)``), ``False`` loads them once. Pending items (the same on every rank)
        are centres chosen already. ``scratch``: a folder for the bfloat16/float32 factors, written once
        when streaming (much faster picks). See :mod:`lbench.strategies.sharded`.
        """
        from lbench.strategies.sharded import as_tensor, sharded_kmeanspp

        check_positive_int(budget, "budget")
        idx = as_tensor(index).long()
        sd = _STORAGE_DTYPES[self.storage_dtype]
        pending = {"pending_probs": pending_probs, "pending_embeddings": pending_embeddings}
        if stream:
            rows: dict[str, Any] = {"chunks": [(probs, embeddings)], "scratch": scratch}
        else:
            rows = {"probs": as_tensor(probs), "embeddings": as_tensor(embeddings), "chunk_size": self.chunk_size}
        return sharded_kmeanspp(budget, generator, index=idx, storage_dtype=sd, group=group, **rows, **pending)

    def _select_sorted(self, view: PoolView, budget: int, generator: torch.Generator) -> Tensor:
        assert view.embeddings is not None
        pending = self._pending_rows(view, "probs", "embeddings")
        return badge_kmeanspp(
            view.probs,
            view.embeddings,
            budget,
            generator,
            chunk_size=self.chunk_size,
            storage_dtype=_STORAGE_DTYPES[self.storage_dtype],
            pending_probs=None if pending is None else pending[0],
            pending_embeddings=None if pending is None else pending[1],
        )
