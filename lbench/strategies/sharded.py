"""Exact k-means++ (BADGE) and greedy k-center (coreset) over a pool sharded across processes or streamed from disk.

One engine serves three cases, with the same code:

* one process, the whole pool in memory (:func:`lbench.strategies.badge.badge_kmeanspp` and
  :func:`lbench.strategies.coreset.k_center_greedy` call it with world size 1, no process group);
* one process, the pool's factors streamed chunk by chunk from memory maps (``np.load(..., mmap_mode="r")``
  of the per-rank score shards ``probs.npy`` / ``embeddings.npy``, float16, float32, or bfloat16 given as
  ``uint16`` bit patterns or as torch tensors);
* ``W`` processes of a ``torch.distributed`` group (gloo on CPU, NCCL on GPUs), each holding its shard.

Each rank keeps its rows and the running minimum squared distance of each row to the centres chosen so
far. Per step every rank updates its minima against the new centre in row blocks (two matrix-vector
products and a fused distance + minimum update per block, no length-``n`` temporaries), then:

* BADGE: every rank takes the cumulative sum of its minima; the ranks all-gather their shard sums
  (``W`` numbers); one uniform number ``u`` from the shared generator (the same seed on every rank)
  picks the rank whose cumulative shard sum crosses ``u * total`` and, inside it, the row whose
  cumulative weight crosses the rest, so row ``i`` is drawn with probability exactly ``w_i / total``
  (the single-process D² law; with ``W = 1`` the draw is the one of :func:`~lbench.strategies._kernels.d2_sample`).
* coreset: the ranks all-gather their shard maxima and positions (``2 W`` numbers); the largest wins,
  ties to the lowest global position, exactly the single-process ``argmax``.

The owning rank then broadcasts the chosen row (``K + d + 2`` numbers for BADGE, ``d + 2`` for coreset:
the row, its squared norm and its global index). Communication per step is ``O(W + K + d)``, never ``O(N)``.

Cost per step and rank: ``O(n_r (K + d))`` reads (``n_r = N / W`` rows), memory ``O(n_r)`` for the
minima (``sq_norm``, float64 minima and, for BADGE, their float64 cumulative sum, the argmax class of each
row when streamed, two matrix-vector outputs) plus the shard's factors (in memory) or one block of
``block_rows`` rows (streamed: re-read each step, from the score shards or from a ``scratch`` copy).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["ShardComm", "sharded_k_center", "sharded_kmeanspp"]

_STREAM_ROWS = 8192  # rows per streamed block: its float32 probabilities (8192 x K) are the temporary
_EW_ROWS = 16384  # rows per elementwise sub-block: below torch's parallel grain, so one thread, in cache


class ShardComm:
    """The process group as the sharded kernels see it: world size, rank, and three small collectives.

    With no initialised ``torch.distributed`` process group (or ``group=False``) it is world size 1 and
    every collective is the identity.
    """

    def __init__(self, group: Any = None) -> None:
        self.group = None if group is False else group
        if group is not False and dist.is_available() and dist.is_initialized():
            self.world = dist.get_world_size(self.group)
            self.rank = dist.get_rank(self.group)
            backend = dist.get_backend(self.group)
            nccl = backend == "nccl"
            self.device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
        else:
            self.world, self.rank, self.device = 1, 0, torch.device("cpu")

    def gather(self, values: Tensor) -> Tensor:
        """All-gather a small 1-D tensor: ``[world, len(values)]`` (row ``r`` from rank ``r``)."""
        if self.world == 1:
            return values.reshape(1, -1)
        v = values.to(self.device).contiguous()
        out = [torch.empty_like(v) for _ in range(self.world)]
        dist.all_gather(out, v, group=self.group)
        return torch.stack(out).cpu()

    def broadcast(self, buf: Tensor, src: int) -> Tensor:
        """Broadcast ``buf`` from group rank ``src`` to every rank (returns the received copy)."""
        if self.world == 1:
            return buf
        v = buf.to(self.device).contiguous()
        root = dist.get_global_rank(self.group, src) if self.group is not None else src
        dist.broadcast(v, src=root, group=self.group)
        return v.cpu()

    def sum(self, buf: Tensor) -> Tensor:
        """All-reduce sum of a small tensor."""
        if self.world == 1:
            return buf
        v = buf.to(self.device).contiguous()
        dist.all_reduce(v, group=self.group)
        return v.cpu()


def as_tensor(block: Any, device: torch.device | str = "cpu") -> Tensor:
    """A chunk of a factor as a tensor on ``device``: tensors pass through, numpy arrays/memmaps are read.

    ``uint16`` numpy arrays are taken as bfloat16 bit patterns (numpy has no bfloat16). Reading a
    memory-mapped slice copies only that slice into memory.
    """
    if isinstance(block, Tensor):
        return block.to(device)
    arr = np.asarray(block)
    if arr.dtype == np.uint16:
        return torch.from_numpy(np.array(arr).view(np.int16)).view(torch.bfloat16).to(device)
    return torch.from_numpy(np.array(arr)).to(device)


def _read_into(block: Any, out: Tensor) -> Tensor:
    """Copy a chunk (tensor, numpy array or memmap slice) into ``out[:m]``, converting its dtype.

    No intermediate copy: the rows are read once, from the mapped pages for a memmap, into a buffer that
    is reused block after block (so the allocator does not fragment over a long stream).
    """
    dst = out[: int(block.shape[0])]
    if isinstance(block, Tensor):
        return dst.copy_(block)
    arr = np.asarray(block)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only memmaps: only read here
        src = (
            torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)
            if arr.dtype == np.uint16
            else torch.from_numpy(arr)
        )
    return dst.copy_(src)


def _split(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(n, s + size)) for s in range(0, n, size)]


# --------------------------------------------------------------------------- sources (a rank's rows)


class _BadgeSource:
    """A rank's rows for BADGE: factors ``q``, ``h`` (in memory, or recomputed per block from chunks)."""

    def __init__(
        self,
        probs: Tensor | None,
        embeddings: Tensor | None,
        chunks: Sequence[tuple[Any, Any]] | None,
        storage_dtype: torch.dtype,
        chunk_size: int | None,
        block_rows: int | None,
        device: torch.device | str | None,
        scratch: str | None = None,
    ) -> None:
        from lbench.strategies.badge import _row_sq_norms, gradient_factors

        self._factors = gradient_factors
        self.sd = storage_dtype
        self.cd = torch.float64 if storage_dtype == torch.float64 else torch.float32
        if chunks is None:
            assert probs is not None and embeddings is not None
            self.device = probs.device
            q, h, sqn = gradient_factors(probs, embeddings, chunk_size, storage_dtype)
            self.q, self.h, self.sq_norm = q, h, sqn
            self.n = int(q.shape[0])
            self.blocks = [(s, e, None) for s, e in _split(self.n, block_rows or max(self.n, 1))]
            self.chunks = None
        else:
            self.device = torch.device(device or "cpu")
            self.chunks = list(chunks)
            self.blocks = []
            offset = 0
            norms, top = [], []
            self.block_rows = block_rows or _STREAM_ROWS
            self._bufs: tuple[Tensor, Tensor, Tensor] | None = None
            self._ones = torch.ones((self.block_rows, 1), dtype=self.cd, device=self.device)
            self.scratch = None
            if scratch is not None:  # the factors, written once in the storage dtype, then streamed from there
                n_all = sum(int(p.shape[0]) for p, _ in self.chunks)
                k, d = int(self.chunks[0][0].shape[1]), int(self.chunks[0][1].shape[1])
                np_dt = {torch.float32: np.float32, torch.float64: np.float64}.get(storage_dtype, np.uint16)
                qf = np.lib.format.open_memmap(f"{scratch}/q.npy", mode="w+", dtype=np_dt, shape=(n_all, k))
                hf = np.lib.format.open_memmap(f"{scratch}/h.npy", mode="w+", dtype=np_dt, shape=(n_all, d))
                self.scratch = (qf, hf)
            for ci, (p, e) in enumerate(self.chunks):
                m = int(p.shape[0])
                if int(e.shape[0]) != m:
                    raise ValueError(f"chunk {ci}: probs have {m} rows but embeddings {int(e.shape[0])}")
                for s, t in _split(m, self.block_rows):
                    self.blocks.append((offset + s, offset + t, (ci, s, t)))
                    y = _read_into(p[s:t], self._buffers(p, e)[0]).argmax(dim=1)
                    top.append(y)  # kept: O(n) ints, saves an argmax per step
                    q_b, h_b = self._stream_factors(p[s:t], e[s:t], y)
                    norms.append(_row_sq_norms(q_b, self.cd) * _row_sq_norms(h_b, self.cd))
                    if self.scratch is not None:
                        for dst, src_b in zip(self.scratch, (q_b, h_b), strict=True):
                            raw = src_b.cpu()
                            raw = raw.view(torch.int16) if raw.element_size() == 2 else raw
                            dst[offset + s : offset + t] = raw.numpy().view(dst.dtype)
                offset += m
            self.n = offset
            self.sq_norm = torch.cat(norms) if norms else torch.empty(0, dtype=self.cd, device=self.device)
            self.top = torch.cat(top).to(torch.int32) if top else torch.empty(0, dtype=torch.int32)
            del top

    def block(self, s: int, e: int, where: tuple[int, int, int] | None) -> tuple[Tensor, Tensor]:
        """``(q, h)`` of rows ``[s, e)``."""
        if where is None:
            return self.q[s:e], self.h[s:e]
        if self.scratch is not None:  # the stored factors: the same values as computed below
            return self._scratch_rows(s, e)
        ci, a, b = where
        p, emb = self.chunks[ci]  # type: ignore[index]
        return self._stream_factors(p[a:b], emb[a:b], self.top[s:e])

    def _buffers(self, p: Any, e: Any) -> tuple[Tensor, Tensor, Tensor]:
        """Reused block buffers: probabilities (compute dtype), ``q`` and ``h`` (storage dtype)."""
        if self._bufs is None:
            rows, k, d = self.block_rows, int(p.shape[1]), int(e.shape[1])
            pb = torch.empty(rows, k, dtype=self.cd, device=self.device)
            qb = pb if self.sd == self.cd else torch.empty(rows, k, dtype=self.sd, device=self.device)
            self._bufs = (pb, qb, torch.empty(rows, d, dtype=self.sd, device=self.device))
        return self._bufs

    def _stream_factors(self, p: Any, e: Any, y: Tensor) -> tuple[Tensor, Tensor]:
        """``(q, h)`` of a streamed block: the operations of ``gradient_factors`` (the same values), in buffers."""
        pb, qb, hb = self._buffers(p, e)
        q = _read_into(p, pb).neg_()
        q.scatter_add_(1, y.to(device=self.device, dtype=torch.long).unsqueeze(1), self._ones[: q.shape[0]])
        if qb is not pb:
            q = qb[: q.shape[0]].copy_(q)
        return q, _read_into(e, hb)

    def _scratch_rows(self, s: int, e: int) -> tuple[Tensor, Tensor]:
        assert self.scratch is not None
        out = []
        for arr in self.scratch:
            t = torch.from_numpy(arr[s:e])  # no copy: the matrix-vector product reads the mapped pages
            out.append((t.view(torch.int16).view(self.sd) if arr.dtype == np.uint16 else t).to(self.device))
        return out[0], out[1]

    def row(self, i: int) -> tuple[Tensor, Tensor]:
        """``(q_i, h_i)`` in the storage dtype."""
        if self.chunks is not None and self.scratch is not None:
            q, h = self._scratch_rows(i, i + 1)
            return q[0], h[0]
        for s, e, where in self.blocks:
            if s <= i < e:
                if where is None:
                    return self.q[i], self.h[i]
                ci, a, _ = where
                p, emb = self.chunks[ci]  # type: ignore[index]
                j = a + (i - s)
                q, h, _ = self._factors(
                    as_tensor(p[j : j + 1], self.device), as_tensor(emb[j : j + 1], self.device), None, self.sd
                )
                return q[0], h[0]
        raise IndexError(i)


def _badge_update(
    src: _BadgeSource,
    qc: Tensor,
    hc: Tensor,
    gc: Tensor,
    min_sq: Tensor,
    tol: float,
    bufs: tuple[Tensor, Tensor],
    fill: bool = False,
) -> None:
    """``min_sq = min(min_sq, ||g_j - g_c||²)``, block by block.

    Per block two matrix-vector products into ``bufs``, then the fused distance and minimum in
    sub-blocks of ``_EW_ROWS`` (single-threaded, cache-resident). Distances within rounding noise of 0
    read exactly 0. ``fill``: overwrite ``min_sq`` instead.
    """
    cd = src.sq_norm.dtype  # distances in float32 (float64 storage: float64); minima kept in float64
    for s, e, where in src.blocks:
        q, h = src.block(s, e, where)
        a_all = torch.mv(q, qc, out=bufs[0][: e - s])
        b_all = torch.mv(h, hc, out=bufs[1][: e - s])
        for r in range(0, e - s, _EW_ROWS):
            t = min(e - s, r + _EW_ROWS)
            a, b = a_all[r:t], b_all[r:t]
            if a.dtype != cd:
                a, b = a.to(cd), b.to(cd)
            sqn = src.sq_norm[s + r : s + t]
            d = torch.addcmul(sqn, a, b, value=-2.0).add_(gc)
            d.masked_fill_(d <= (sqn + gc).mul_(tol), 0.0)
            out = min_sq[s + r : s + t]
            if fill:
                out.copy_(d)
            else:
                torch.minimum(out, d, out=out)


def _locate(totals: Tensor, target: Tensor) -> int:
    """First position whose cumulative sum exceeds ``target`` (``len`` when none)."""
    return int(torch.searchsorted(torch.cumsum(totals, 0), target.reshape(1), right=True).item())


def sharded_kmeanspp(
    budget: int,
    generator: torch.Generator | None = None,
    *,
    probs: Tensor | None = None,
    embeddings: Tensor | None = None,
    chunks: Sequence[tuple[Any, Any]] | None = None,
    index: Tensor | None = None,
    storage_dtype: torch.dtype | None = None,
    chunk_size: int | None = None,
    block_rows: int | None = None,
    pending_probs: Tensor | None = None,
    pending_embeddings: Tensor | None = None,
    device: torch.device | str | None = None,
    group: Any = None,
    scratch: str | None = None,
) -> Tensor:
    """BADGE's k-means++ seeding over this rank's shard, exact over the union of all ranks' shards.

    Every rank calls it with its own rows (``probs``/``embeddings`` in memory, or ``chunks`` of
    ``(probs, embeddings)`` arrays to stream, e.g. memory maps of the scoring shards) and a generator
    seeded identically on every rank. The shards, concatenated in rank order, form the pool; the picks
    are global positions into that concatenation (or ``index`` values when every rank passes its rows'
    global pool indices).

    Time per pick and rank: ``O(n_r (K + d))`` (``n_r`` this rank's rows) plus an ``O(n_r)`` float64
    cumulative sum; communication ``O(W + K + d)``. Memory: the shard's factors ``n_r (K + d)`` values
    in the storage dtype (none when streamed: one block of ``block_rows`` rows instead) plus about ``16 n_r``
    bytes of vectors.

    Args:
        budget: Number of centres, ``0 < budget <= N`` (the pool's total size).
        generator: Shared source of randomness, seeded identically on every rank (default: seed 0).
        probs: ``[n_r, K]`` probabilities of this rank's rows (with ``embeddings``; or ``chunks``).
        embeddings: ``[n_r, d]`` their embeddings.
        chunks: Instead of ``probs``/``embeddings``: a sequence of ``(probs, embeddings)`` row chunks
            (tensors, numpy arrays or memmaps; ``uint16`` = bfloat16 bits), streamed each step.
        index: ``[n_r]`` global pool indices of this rank's rows (default: global positions).
        storage_dtype: dtype of the factors in the matrix-vector products (default float32).
        chunk_size: Rows per chunk when computing in-memory factors (bounds temporaries).
        block_rows: Rows per matrix-vector block (default: the whole in-memory shard, or 8,192 rows of
            streamed chunks).
        pending_probs: ``[n_p, K]`` pending items (centres chosen already; the same on every rank).
        pending_embeddings: ``[n_p, d]`` their embeddings.
        device: Device of the streamed blocks (default CPU; in-memory shards stay where they are).
        group: ``torch.distributed`` process group (default: the default group when initialised,
            else world size 1; ``False``: world size 1).
        scratch: With ``chunks``: a folder where the first pass writes the factors ``q``/``h`` in the storage
            dtype (``q.npy``, ``h.npy``, ``n_r (K + d)`` values); each pick then streams them instead of
            rebuilding ``q`` from the probabilities (the same values, so the same picks; much faster).

    Returns:
        ``[budget]`` int64 global positions (or ``index`` values), in pick order, the same on every rank.

    Raises:
        ValueError: ``budget`` out of range, non-finite inputs, or pending probs without embeddings.
    """
    from lbench.strategies.badge import _REL_TOL_EPS, _chunks, _min_sq_dist_to_rows, gradient_factors

    if (chunks is None) == (probs is None or embeddings is None):
        raise ValueError("pass either probs and embeddings, or chunks")
    comm = ShardComm(group)
    sd = storage_dtype or torch.float32
    src = _BadgeSource(probs, embeddings, chunks, sd, chunk_size, block_rows, device, scratch)
    n_r, dev = src.n, src.device
    counts = comm.gather(torch.tensor([n_r], dtype=torch.float64))[:, 0].long()
    offsets = torch.cumsum(counts, 0) - counts
    n_total, offset = int(counts.sum()), int(offsets[comm.rank])
    if not 0 < budget <= n_total:
        raise ValueError(f"budget must be in [1, {n_total}], got {budget}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    finite = torch.tensor([float(bool(torch.isfinite(src.sq_norm).all()))], dtype=torch.float64)
    if float(comm.gather(finite).min()) < 1:  # a NaN or inf in probs or embeddings propagates here
        raise ValueError("probs and embeddings must be finite, with squared norms that fit in float32")
    sq_norm, cd = src.sq_norm, src.sq_norm.dtype
    tol = _REL_TOL_EPS * torch.finfo(sd).eps
    min_sq = torch.empty(n_r, dtype=torch.float64, device=dev)  # float64: the cumsum needs no conversion
    cum = torch.empty(n_r, dtype=torch.float64, device=dev)
    chosen = torch.zeros(n_r, dtype=torch.bool, device=dev)
    longest = max((e - s for s, e, _ in src.blocks), default=0)
    bufs = (torch.empty(longest, dtype=sd, device=dev), torch.empty(longest, dtype=sd, device=dev))
    k = int(src.q.shape[1]) if src.chunks is None else int(src.chunks[0][0].shape[1]) if src.chunks else 0
    d = int(src.h.shape[1]) if src.chunks is None else int(src.chunks[0][1].shape[1]) if src.chunks else 0
    picks: list[int] = []

    def take(owner: int, local: int | None) -> tuple[Tensor, Tensor, Tensor]:
        """Broadcast the chosen row from ``owner``; record the pick; return its ``(q, h, ||g||²)``."""
        buf = torch.zeros(k + d + 2, dtype=torch.float64)
        if comm.rank == owner:
            assert local is not None
            qr, hr = src.row(local)
            buf[:k], buf[k : k + d] = qr.double().cpu(), hr.double().cpu()
            buf[k + d] = float(sq_norm[local])
            buf[k + d + 1] = float(index[local]) if index is not None else offset + local
            chosen[local] = True
        buf = comm.broadcast(buf, owner)
        picks.append(int(buf[k + d + 1]))
        return buf[:k].to(dev, sd), buf[k : k + d].to(dev, sd), buf[k + d].to(dev, cd)

    if pending_probs is not None and pending_probs.shape[0] > 0:
        if pending_embeddings is None:
            raise ValueError("pending_probs need pending_embeddings")
        centers = gradient_factors(pending_probs.to(dev), pending_embeddings.to(dev), chunk_size, sd)
        if not bool(torch.isfinite(centers[2]).all()):
            raise ValueError("pending probs and embeddings must be finite, with squared norms that fit in float32")
        for s, e, where in src.blocks:
            q, h = src.block(s, e, where)
            _min_sq_dist_to_rows(q, h, sq_norm[s:e], centers, min_sq[s:e], _chunks(e - s, None))
    else:  # the first centre: the largest gradient norm, ties to the lowest global position
        if n_r:
            i = int(torch.argmax(sq_norm))
            mine = torch.tensor([float(sq_norm[i]), float(i)], dtype=torch.float64)
        else:
            mine = torch.tensor([-torch.inf, 0.0], dtype=torch.float64)
        best = comm.gather(mine)
        owner = int(torch.argmax(best[:, 0]))
        first = int(best[owner, 1]) if comm.rank == owner else None
        center = take(owner, first)
        _badge_update(src, *center, min_sq, tol, bufs, fill=True)
        if first is not None:
            min_sq[first] = 0.0
    while len(picks) < budget:
        torch.cumsum(min_sq, 0, dtype=torch.float64, out=cum)
        mine = cum[-1:].cpu() if n_r else torch.zeros(1, dtype=torch.float64)
        totals = comm.gather(mine)[:, 0]
        u = torch.rand((), generator=generator, dtype=torch.float64, device=generator.device).cpu()
        target = u * totals.sum() if comm.world > 1 else u * totals[0]
        owner = _locate(totals, target)
        if owner >= comm.world:  # u * total hit the end: total 0, or rounding
            positive = torch.nonzero(totals > 0).squeeze(1)
            if positive.numel() == 0:
                warnings.warn(
                    f"BADGE: all {n_total - len(picks)} remaining candidates are at distance 0 from the chosen "
                    f"centers; drawing the last {budget - len(picks)} uniformly at random",
                    stacklevel=3,
                )
                picks.extend(_uniform_rest(comm, chosen, budget - len(picks), generator, offset, index))
                break
            owner = int(positive[-1])
            target = torch.cumsum(totals, 0)[owner]
        local = None
        if comm.rank == owner:
            before = torch.cumsum(totals, 0)[owner - 1] if owner > 0 else torch.zeros((), dtype=torch.float64)
            local_target = (target - before) if comm.world > 1 else target
            local = int(torch.searchsorted(cum, local_target.to(dev).reshape(1), right=True).item())
            if local >= n_r:  # rounding at the shard's end: its last positive weight
                local = int(torch.nonzero(min_sq > 0).squeeze(1)[-1].item())
        center = take(owner, local)
        if len(picks) < budget:
            _badge_update(src, *center, min_sq, tol, bufs)
            if local is not None:
                min_sq[local] = 0.0
    return torch.tensor(picks, dtype=torch.long, device=dev)


def _uniform_rest(
    comm: ShardComm, chosen: Tensor, count: int, generator: torch.Generator, offset: int, index: Tensor | None
) -> list[int]:
    """``count`` unchosen rows of the whole pool drawn uniformly without replacement (one shared permutation)."""
    rest = torch.nonzero(~chosen).squeeze(1).cpu()
    sizes = comm.gather(torch.tensor([rest.numel()], dtype=torch.float64))[:, 0].long()
    starts = torch.cumsum(sizes, 0) - sizes
    perm = torch.randperm(int(sizes.sum()), generator=generator, device=generator.device).cpu()[:count]
    if comm.world == 1:
        out = rest[perm]
        return (index.cpu()[out] if index is not None else out + offset).tolist()
    lo, hi = int(starts[comm.rank]), int(starts[comm.rank] + sizes[comm.rank])
    mine = (perm >= lo) & (perm < hi)
    buf = torch.zeros(count, dtype=torch.float64)
    local = rest[perm[mine] - lo]
    buf[mine] = (index.cpu()[local] if index is not None else local + offset).double()
    return comm.sum(buf).long().tolist()


# --------------------------------------------------------------------------- k-center greedy (coreset)


class _CenterSource:
    """A rank's rows for k-center: embeddings in the compute dtype (in memory, or read per block)."""

    def __init__(
        self, embeddings: Tensor | None, chunks: Sequence[Any] | None, block_rows: int | None, device: Any
    ) -> None:
        from lbench.strategies._kernels import sq_norms
        from lbench.strategies.coreset import _as_compute

        self._as_compute = _as_compute
        if chunks is None:
            assert embeddings is not None
            self.x: Tensor | None = _as_compute(embeddings)
            self.device = self.x.device
            self.n, self.d = int(self.x.shape[0]), int(self.x.shape[1])
            self.blocks: list[tuple[int, int, tuple[int, int, int] | None]] = [
                (s, e, None) for s, e in _split(self.n, block_rows or max(self.n, 1))
            ]
            self.chunks: list[Any] | None = None
            self.sq_norm = sq_norms(self.x)
        else:
            self.x = None
            self.device = torch.device(device or "cpu")
            self.chunks = list(chunks)
            self.blocks, norms, offset = [], [], 0
            self.d = int(self.chunks[0].shape[1]) if self.chunks else 0
            rows = block_rows or _STREAM_ROWS
            wide = self.chunks and str(self.chunks[0].dtype) in ("float64", "torch.float64")
            self._xbuf = torch.empty(rows, self.d, dtype=torch.float64 if wide else torch.float32, device=self.device)
            for ci, c in enumerate(self.chunks):
                m = int(c.shape[0])
                for s, t in _split(m, rows):
                    self.blocks.append((offset + s, offset + t, (ci, s, t)))
                    norms.append(sq_norms(_read_into(c[s:t], self._xbuf)))
                offset += m
            self.n = offset
            self.sq_norm = torch.cat(norms) if norms else torch.empty(0, device=self.device)

    def block(self, s: int, e: int, where: tuple[int, int, int] | None) -> Tensor:
        if where is None:
            assert self.x is not None
            return self.x[s:e]
        ci, a, b = where
        return _read_into(self.chunks[ci][a:b], self._xbuf)  # type: ignore[index]  # the compute dtype, reused

    def row(self, i: int) -> Tensor:
        for s, e, where in self.blocks:
            if s <= i < e:
                if where is None:
                    return self.block(s, e, None)[i - s]
                ci, a, _ = where
                return self.block(0, 0, (ci, a + i - s, a + i - s + 1))[0]
        raise IndexError(i)


def _center_update(src: _CenterSource, c: Tensor, cn: Tensor, min_sq: Tensor, buf: Tensor) -> None:
    """``min_sq = min(min_sq, ||x_j - c||²)``, block by block.

    One matrix-vector product per block into ``buf``, then the fused update in single-threaded,
    cache-resident sub-blocks.
    """
    for s, e, where in src.blocks:
        x = src.block(s, e, where)
        dist_all = torch.addmv(src.sq_norm[s:e], x, c, alpha=-2.0, out=buf[: e - s])
        for r in range(0, e - s, _EW_ROWS):
            t = min(e - s, r + _EW_ROWS)
            d = dist_all[r:t].add_(cn).clamp_min_(0.0)
            out = min_sq[s + r : s + t]
            torch.minimum(out, d, out=out)


def sharded_k_center(
    budget: int,
    generator: torch.Generator | None = None,
    *,
    embeddings: Tensor | None = None,
    chunks: Sequence[Any] | None = None,
    labeled_embeddings: Tensor | None = None,
    index: Tensor | None = None,
    chunk_size: int | None = None,
    use_faiss: bool | None = None,
    block_rows: int | None = None,
    device: torch.device | str | None = None,
    group: Any = None,
) -> Tensor:
    """Greedy k-center over this rank's shard, exact over the union of all ranks' shards.

    The same picks as the single-process :func:`lbench.strategies.coreset.k_center_greedy` on the
    concatenation of the shards in rank order (ties to the lowest global position).

    Time per pick and rank: ``O(n_r d)``; communication ``O(W + d)``. Memory: the shard's embeddings
    (none when streamed: one block) plus two length-``n_r`` vectors. The initial pass to the labeled
    set (replicated on every rank) costs ``O(n_r m d)``.

    Args:
        budget: Number of picks, ``0 < budget <= N``.
        generator: Draws the first centre when there is no labeled set (seeded identically on every rank).
        embeddings: ``[n_r, d]`` this rank's embeddings (or ``chunks``).
        chunks: Instead of ``embeddings``: a sequence of ``[m, d]`` row chunks (tensors, numpy arrays or
            memmaps), streamed each step.
        labeled_embeddings: ``[m, d]`` centres chosen already (labeled and pending), the same on every rank.
        index: ``[n_r]`` global pool indices of this rank's rows (default: global positions).
        chunk_size: Tile side of the initial pass to the labeled set.
        use_faiss: Use faiss for that pass.
        block_rows: Rows per matrix-vector block (default: the whole in-memory shard, or 8,192 rows of
            streamed chunks).
        device: Device of the streamed blocks (default CPU).
        group: ``torch.distributed`` process group (see :func:`sharded_kmeanspp`).

    Returns:
        ``[budget]`` int64 global positions (or ``index`` values), in pick order, the same on every rank.
    """
    from lbench.strategies.coreset import min_sq_dist_to_set

    if (chunks is None) == (embeddings is None):
        raise ValueError("pass either embeddings or chunks")
    comm = ShardComm(group)
    src = _CenterSource(embeddings, chunks, block_rows, device)
    n_r, dev = src.n, src.device
    counts = comm.gather(torch.tensor([n_r], dtype=torch.float64))[:, 0].long()
    offsets = torch.cumsum(counts, 0) - counts
    n_total, offset = int(counts.sum()), int(offsets[comm.rank])
    if not 0 < budget <= n_total:
        raise ValueError(f"budget must be in [1, {n_total}], got {budget}")
    dtype = src.sq_norm.dtype
    min_sq = torch.full((n_r,), torch.inf, dtype=dtype, device=dev)
    buf = torch.empty(max((e - s for s, e, _ in src.blocks), default=0), dtype=dtype, device=dev)
    picks: list[int] = []
    d = src.d

    def take(owner: int, local: int | None) -> tuple[Tensor, Tensor]:
        buf = torch.zeros(d + 2, dtype=torch.float64)
        if comm.rank == owner:
            assert local is not None
            buf[:d] = src.row(local).double().cpu()
            buf[d] = float(src.sq_norm[local])
            buf[d + 1] = float(index[local]) if index is not None else offset + local
        buf = comm.broadcast(buf, owner)
        picks.append(int(buf[d + 1]))
        return buf[:d].to(dev, dtype), buf[d].to(dev, dtype)

    if labeled_embeddings is not None and labeled_embeddings.shape[0] > 0:
        if labeled_embeddings.shape[1] != d:
            raise ValueError(f"reference set must be [m > 0, {d}], got {tuple(labeled_embeddings.shape)}")
        for s, e, where in src.blocks if src.x is None else [(0, n_r, None)]:
            x = src.x if where is None else src.block(s, e, where)
            if x is not None and x.shape[0]:
                min_sq[s:e] = min_sq_dist_to_set(x, labeled_embeddings, chunk_size, use_faiss)
    else:
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        first = int(torch.randint(n_total, (), generator=generator, device=generator.device).item())
        owner = int(torch.searchsorted(torch.cumsum(counts, 0), torch.tensor([first]), right=True))
        local = first - offset if comm.rank == owner else None
        c, cn = take(owner, local)
        _center_update(src, c, cn, min_sq, buf)
        if local is not None:
            min_sq[local] = -1.0
    while len(picks) < budget:
        if n_r:
            i = int(torch.argmax(min_sq))
            mine = torch.tensor([float(min_sq[i]), float(i)], dtype=torch.float64)
        else:
            mine = torch.tensor([-torch.inf, 0.0], dtype=torch.float64)
        best = comm.gather(mine)
        owner = int(torch.argmax(best[:, 0]))  # first maximum: ties to the lowest rank, so the lowest position
        local = int(best[owner, 1]) if comm.rank == owner else None
        c, cn = take(owner, local)
        if len(picks) == budget:
            break
        _center_update(src, c, cn, min_sq, buf)
        if local is not None:
            min_sq[local] = -1.0  # chosen: below every distance, never the maximum again
    return torch.tensor(picks, dtype=torch.long, device=dev)
