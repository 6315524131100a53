"""Sharded and streamed selection: 2 CPU processes (gloo) give the single-process picks (coreset) and law (BADGE)."""

import gc
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from lbench.strategies.badge import badge_kmeanspp
from lbench.strategies.coreset import k_center_greedy
from lbench.strategies.sharded import as_tensor, sharded_k_center, sharded_kmeanspp

from . import _sharded_worker as worker

DRAWS = 1500


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _explicit_grad(probs, emb):
    q = -probs.double()
    q[torch.arange(q.shape[0]), probs.argmax(dim=1)] += 1.0
    return (q[:, :, None] * emb.double()[:, None, :]).reshape(q.shape[0], -1)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Run the worker on 2 processes once; return rank 0's gathered results."""
    out = tmp_path_factory.mktemp("sharded")
    port = str(_free_port())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    script = Path(worker.__file__)
    procs = [
        subprocess.Popen([sys.executable, str(script), str(r), "2", port, str(out), str(DRAWS)], env=env)
        for r in range(2)
    ]
    codes = [p.wait(timeout=600) for p in procs]
    assert codes == [0, 0], f"worker exit codes {codes}"
    return json.loads((out / "result.json").read_text())["ranks"]


def test_sharded_coreset_equals_single_process(two_ranks):
    x, lab = worker.coreset_data()
    single = k_center_greedy(x, lab, 20).tolist()
    for rank in two_ranks:
        assert rank["coreset_labeled"] == single
        assert rank["coreset_streamed"] == single
        assert rank["coreset_index"] == [1000 + i for i in single]
        assert rank["coreset_hook"] == [1000 + i for i in single]  # Coreset.select_sharded, streamed
        for s, picks in enumerate(rank["coreset_free"]):
            assert picks == k_center_greedy(x, None, 15, generator=torch.Generator().manual_seed(s)).tolist()


def test_sharded_badge_follows_d2_law(two_ranks):
    """The first pick after a fixed (pending) centre, drawn on 2 ranks, is distributed as D² over the whole pool."""
    probs, emb, (pp, pe) = worker.badge_data()
    g, gp = _explicit_grad(probs, emb), _explicit_grad(pp, pe)
    weights = (g - gp[0]).square().sum(dim=1).numpy()
    counts = np.array(two_ranks[0]["badge_counts"])
    assert counts.sum() == DRAWS and two_ranks[1]["badge_counts"] == two_ranks[0]["badge_counts"]
    expected = weights / weights.sum() * DRAWS
    assert expected.min() >= 5, "test data gives a cell too small for chi-square"
    assert counts[:5].sum() > 0 and counts[5:].sum() > 0  # both shards drawn from
    assert stats.chisquare(counts, expected).pvalue > 0.001


def test_sharded_badge_is_deterministic_and_shared(two_ranks):
    runs0, runs1 = two_ranks[0]["badge_runs"], two_ranks[1]["badge_runs"]
    assert runs0[0] == runs0[1] == runs1[0] == runs1[1]
    assert len(set(runs0[0])) == 8
    hook = two_ranks[0]["badge_hook"]  # Badge.select_sharded: global pool indices, the same on both ranks
    assert hook == two_ranks[1]["badge_hook"] and len(set(hook)) == 6 and set(hook) <= set(range(500, 512))


def test_world_size_one_equals_badge_kmeanspp():
    probs, emb, _ = worker.badge_data()
    for seed in range(3):
        ours = sharded_kmeanspp(6, torch.Generator().manual_seed(seed), probs=probs, embeddings=emb, group=False)
        assert torch.equal(ours, badge_kmeanspp(probs, emb, 6, torch.Generator().manual_seed(seed)))


# --------------------------------------------------------------------------- streaming from disk


def _shards(tmp_path, n=90, k=5, d=7, dtype=np.float16, parts=(40, 50)):
    """Per-rank score shards on disk (``probs.npy``, ``embeddings.npy``), opened as memory maps."""
    g = torch.Generator().manual_seed(31)
    probs = torch.softmax(2.0 * torch.randn(n, k, generator=g), dim=1).numpy().astype(dtype)
    emb = torch.randn(n, d, generator=g).numpy().astype(dtype)
    chunks, start = [], 0
    for r, m in enumerate(parts):
        folder = tmp_path / f"rank{r}"
        folder.mkdir()
        np.save(folder / "probs.npy", probs[start : start + m])
        np.save(folder / "embeddings.npy", emb[start : start + m])
        chunks.append((np.load(folder / "probs.npy", mmap_mode="r"), np.load(folder / "embeddings.npy", mmap_mode="r")))
        start += m
    return probs, emb, chunks


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("storage", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("block_rows", [7, 16384])
@pytest.mark.parametrize("scratch", [False, True])
def test_streamed_badge_equals_in_memory(tmp_path, dtype, storage, block_rows, scratch):
    probs, emb, chunks = _shards(tmp_path, dtype=dtype)
    assert isinstance(chunks[0][0], np.memmap)
    p, e = torch.from_numpy(probs.astype(np.float32)), torch.from_numpy(emb.astype(np.float32))
    folder = tmp_path / "scratch"
    folder.mkdir()
    for seed in range(3):
        mem = badge_kmeanspp(p, e, 12, torch.Generator().manual_seed(seed), storage_dtype=storage)
        streamed = sharded_kmeanspp(
            12,
            torch.Generator().manual_seed(seed),
            chunks=chunks,
            storage_dtype=storage,
            block_rows=block_rows,
            scratch=str(folder) if scratch else None,
        )
        assert streamed.tolist() == mem.tolist()
    assert (folder / "q.npy").exists() == scratch


@pytest.mark.parametrize("block_rows", [6, 16384])
def test_streamed_coreset_equals_in_memory(tmp_path, block_rows):
    _, emb, chunks = _shards(tmp_path, dtype=np.float32)
    x = torch.from_numpy(emb)
    lab = x[:3] + 0.5
    streamed = sharded_k_center(15, chunks=[c[1] for c in chunks], labeled_embeddings=lab, block_rows=block_rows)
    assert streamed.tolist() == k_center_greedy(x, lab, 15).tolist()
    free = sharded_k_center(15, torch.Generator().manual_seed(4), chunks=[c[1] for c in chunks], block_rows=block_rows)
    assert free.tolist() == k_center_greedy(x, None, 15, generator=torch.Generator().manual_seed(4)).tolist()


def test_bfloat16_bits_as_uint16():
    t = torch.randn(4, 3).bfloat16()
    bits = t.view(torch.int16).numpy().view(np.uint16)
    assert torch.equal(as_tensor(bits), t)


def test_streaming_memory_is_one_chunk(tmp_path):
    """A streamed run never holds the factors: its peak anonymous memory stays far below their size.

    The mapped shards' pages count in RSS (page cache, not allocations), so a thread samples ``RssAnon``
    (allocations only) every millisecond while the selection runs.
    """
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs Linux /proc")
    n, k, d = 300_000, 100, 256
    g = torch.Generator().manual_seed(0)
    np.save(tmp_path / "p.npy", torch.softmax(torch.randn(n, k, generator=g), 1).numpy().astype(np.float16))
    np.save(tmp_path / "e.npy", torch.randn(n, d, generator=g).numpy().astype(np.float16))
    chunks = [(np.load(tmp_path / "p.npy", mmap_mode="r"), np.load(tmp_path / "e.npy", mmap_mode="r"))]
    factors_mb = n * (k + d) * 4 / 2**20  # what float32 factors in memory would take (about 407 MB)

    def anon_kib():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))

    gc.collect()
    before, peak, done = anon_kib(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], anon_kib())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        picks = sharded_kmeanspp(3, torch.Generator().manual_seed(0), chunks=chunks, block_rows=4096)
    finally:
        done.set()
        sampler.join()
    extra_mb = (max(peak[0], anon_kib()) - before) / 1024
    assert len(set(picks.tolist())) == 3
    assert extra_mb < factors_mb / 4, f"allocations grew by {extra_mb:.0f} MB; the factors are {factors_mb:.0f} MB"


def test_streamed_source_holds_only_length_n_vectors(tmp_path):
    """Structurally: a streamed BADGE source keeps no factor matrix, only length-n vectors."""
    from lbench.strategies.sharded import _BadgeSource

    _, _, chunks = _shards(tmp_path)
    src = _BadgeSource(None, None, chunks, torch.float32, None, 16, "cpu")
    q, h = src.block(16, 32, src.blocks[1][2])
    assert q.shape == (16, 5) and h.shape == (16, 7)
    tensors = [v for v in vars(src).values() if isinstance(v, torch.Tensor)]
    tensors += [b for b in src._bufs or () if isinstance(b, torch.Tensor)]
    assert {"sq_norm", "top"} <= set(vars(src))
    for t in tensors:  # length-n vectors, or block buffers of block_rows (16) rows
        assert (t.dim() == 1 and len(t) == 90) or t.shape[0] == 16, tuple(t.shape)
