"""Selection at ImageNet scale: lbench's BADGE / coreset kernels vs LabelBench's, per step, in one run.

Two parts, synthetic data of the real shape, one process:

* ``100k``: n = 100,000, K = 100, d = 512, B = 1,000 (the issue's acceptance size). BADGE and coreset,
  LabelBench's kernels (re-implemented below from ``LabelBench/strategy/strategy_impl/badge.py`` and
  ``coreset_sampling.py``: float32 numpy inputs as its trainer returns them, its ``distance`` with the
  ``assert``, ``D2`` in float64, ``sum(D2 ** 2)`` with Python's ``sum``, a ``scipy.stats.rv_discrete``
  rebuilt every step; coreset through ``sklearn.metrics.pairwise_distances``) against ours, and a plain
  read of the same bytes (the bandwidth floor: an integer ``amax`` over the factors).
* ``1.28M``: n = 1,281,167, K = 1,000, d = 512 (ImageNet-1k): BADGE per-step time for LabelBench's kernel
  (a few steps), ours with float32 and bfloat16 storage (in memory) and ours streamed from float16
  memory maps (``probs.npy``/``embeddings.npy`` on disk); the time for B = 50,000 extrapolated from the
  per-step time; peak RSS per row.

Per-step times are medians over timed steps, so one-off setup (the factors, LabelBench's norms) is not
counted and a disturbed step on a shared machine does not dominate. At 100k the kernels are *interleaved*:
blocks of 25 LabelBench steps, 25 of ours per storage dtype and 25 plain reads alternate, so every ratio
compares steps taken under the same machine conditions. Ours are the loop body of ``sharded_kmeanspp`` /
``sharded_k_center`` at world size 1 (what ``badge_kmeanspp`` / ``k_center_greedy`` run); the full
B = 1,000 runs are timed once as well (``full ...`` in the note). ``time for B`` is per-step x B.

Usage::

    python benchmarks/bench_scale.py                 # both parts
    python benchmarks/bench_scale.py --parts 100k    # only the acceptance size
    python benchmarks/bench_scale.py --lb-picks 100 --steps 3 --no-stream
    python benchmarks/bench_scale.py --parts 1.28M --stream-only --stream-rebuild
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from sklearn.metrics import pairwise_distances, pairwise_distances_chunked

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import cpu_name, proc_status_kib, reset_peak_rss  # noqa: E402

from lbench.strategies.badge import badge_kmeanspp  # noqa: E402
from lbench.strategies.coreset import k_center_greedy  # noqa: E402

# --------------------------------------------------------------------------- memory


def _peak_gib() -> float:
    return (proc_status_kib("VmHWM") or 0) / 2**20


def _available_gib() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return 0.0


# --------------------------------------------------------------------------- LabelBench's kernels


def _lb_distance(x1: tuple, x2: tuple, mu: tuple) -> np.ndarray:
    """LabelBench ``badge.distance``, as published."""
    y1, y2 = mu
    x1_vec, x1_norm_square = x1
    x2_vec, x2_norm_square = x2
    y1_vec, y1_norm_square = y1
    y2_vec, y2_norm_square = y2
    dist = x1_norm_square * x2_norm_square + y1_norm_square * y2_norm_square - 2 * (x1_vec @ y1_vec) * (x2_vec @ y2_vec)
    assert np.min(dist) / np.max(dist) > -1e-4
    return np.sqrt(np.clip(dist, a_min=0, a_max=None))


def _lb_init_centers(x1: tuple, x2: tuple, chosen: list, mu: list | None, d2: np.ndarray | None) -> tuple:
    """LabelBench ``badge.init_centers``, as published (global numpy RNG for ``rv_discrete.rvs``)."""
    if len(chosen) == 0:
        ind = np.argmax(x1[1] * x2[1])
        mu = [((x1[0][ind], x1[1][ind]), (x2[0][ind], x2[1][ind]))]
        chosen = [ind]
        d2 = _lb_distance(x1, x2, mu[0]).ravel().astype(float)
        d2[np.array(chosen)] = 0
    else:
        assert mu is not None and d2 is not None
        new_d = _lb_distance(x1, x2, mu[-1]).ravel().astype(float)
        d2 = np.minimum(d2, new_d)
        d2[np.array(chosen)] = 0
        ddist = (d2**2) / sum(d2**2)
        custom = stats.rv_discrete(name="custm", values=(np.arange(len(ddist)), ddist))
        ind = custom.rvs(size=1)[0]
        assert ind not in set(chosen)
        mu.append(((x1[0][ind], x1[1][ind]), (x2[0][ind], x2[1][ind])))
        chosen.append(ind)
    return chosen, mu, d2


def labelbench_badge_steps(q: np.ndarray, h: np.ndarray, picks: int, seed: int = 0) -> tuple[float, list[int]]:
    """Run LabelBench's BADGE loop for ``picks`` picks on float32 factors; return (median seconds per step, picks).

    Setup (``q = onehot - p`` and the squared norms, as LabelBench computes them before its loop) is not timed.
    """
    np.random.seed(seed)
    # LabelBench's np.sum(x ** 2, axis=-1), in chunks (its x ** 2 temporary would add 5 GB at 1.28M)
    qn = np.concatenate([np.sum(q[s : s + 65536] ** 2, axis=-1) for s in range(0, len(q), 65536)])
    hn = np.concatenate([np.sum(h[s : s + 65536] ** 2, axis=-1) for s in range(0, len(h), 65536)])
    chosen: list = []
    mu, d2 = None, None
    chosen, mu, d2 = _lb_init_centers((q, qn), (h, hn), chosen, mu, d2)  # first pick: argmax + first pass
    times = []
    for _ in range(picks - 1):
        t0 = time.perf_counter()
        chosen, mu, d2 = _lb_init_centers((q, qn), (h, hn), chosen, mu, d2)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), [int(c) for c in chosen]


def labelbench_coreset_steps(x: np.ndarray, labeled: np.ndarray, picks: int) -> tuple[float, float, list[int]]:
    """LabelBench `CoresetSampling.furthest_first` (1 GB working memory): (init s, median s per step, picks)."""
    t0 = time.perf_counter()
    min_dist = np.zeros(x.shape[0])
    i = 0
    for chunk in pairwise_distances_chunked(
        x, labeled, reduce_func=lambda d, _: np.amin(d, axis=1), working_memory=1000
    ):
        min_dist[i : i + len(chunk)] = chunk
        i += len(chunk)
    t_init = time.perf_counter() - t0
    idxs, times = [], []
    for _ in range(picks):
        t0 = time.perf_counter()
        idx = min_dist.argmax()
        idxs.append(int(idx))
        dist_new_ctr = pairwise_distances(x, x[[idx], :])
        min_dist = np.minimum(min_dist, dist_new_ctr[:, 0])
        times.append(time.perf_counter() - t0)
    return t_init, float(np.median(times)), idxs


# --------------------------------------------------------------------------- helpers


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def ours_badge_steps(steps: int, seed: int = 0, **source: object) -> tuple[float, float, float]:
    """Time lbench's BADGE pick directly: ``(setup seconds, median seconds per pick, peak RSS GiB)``.

    The picks of :func:`ours_badge_stepper`; setup is the building of the factors (``_BadgeSource``).
    """
    reset_peak_rss()
    timings: dict[str, float] = {}
    step = ours_badge_stepper(seed, timings=timings, **source)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return timings["setup"], float(np.median(times)), _peak_gib()


def lb_badge_stepper(q: np.ndarray, h: np.ndarray, seed: int = 0) -> Callable[[], object]:
    """One LabelBench BADGE pick per call (after its first pick)."""
    np.random.seed(seed)
    qn = np.concatenate([np.sum(q[s : s + 65536] ** 2, axis=-1) for s in range(0, len(q), 65536)])
    hn = np.concatenate([np.sum(h[s : s + 65536] ** 2, axis=-1) for s in range(0, len(h), 65536)])
    state: list = list(_lb_init_centers((q, qn), (h, hn), [], None, None))

    def step() -> object:
        state[:] = _lb_init_centers((q, qn), (h, hn), *state)
        return state[0][-1]

    return step


def ours_badge_stepper(
    seed: int = 0, timings: dict[str, float] | None = None, **source: object
) -> Callable[[], object]:
    """One lbench BADGE pick per call: the loop body of ``sharded_kmeanspp`` at world size 1.

    A D² draw from the float64 cumulative sum, the chosen row, the fused update of the running
    minima. ``timings["setup"]`` (when given) gets the seconds spent building the factors.
    """
    from lbench.strategies.badge import _REL_TOL_EPS
    from lbench.strategies.sharded import _badge_update, _BadgeSource

    t0 = time.perf_counter()
    src = _BadgeSource(**source)  # type: ignore[arg-type]
    if timings is not None:
        timings["setup"] = time.perf_counter() - t0
    n, sd = src.n, src.sd
    tol = _REL_TOL_EPS * torch.finfo(sd).eps
    min_sq = torch.empty(n, dtype=torch.float64)
    cum = torch.empty(n, dtype=torch.float64)
    longest = max(e - s for s, e, _ in src.blocks)
    bufs = (torch.empty(longest, dtype=sd), torch.empty(longest, dtype=sd))
    gen = torch.Generator().manual_seed(seed)
    first = int(torch.argmax(src.sq_norm))
    _badge_update(src, *src.row(first), src.sq_norm[first], min_sq, tol, bufs, fill=True)
    min_sq[first] = 0.0

    def step() -> object:
        torch.cumsum(min_sq, 0, out=cum)
        u = torch.rand((), generator=gen, dtype=torch.float64)
        idx = min(int(torch.searchsorted(cum, (u * cum[-1]).reshape(1), right=True)), n - 1)
        _badge_update(src, *src.row(idx), src.sq_norm[idx], min_sq, tol, bufs)
        min_sq[idx] = 0.0
        return idx

    return step


def lb_coreset_stepper(x: np.ndarray, labeled: np.ndarray) -> Callable[[], object]:
    """One LabelBench coreset pick per call (after its pass to the labeled set)."""
    min_dist = np.concatenate(
        list(pairwise_distances_chunked(x, labeled, reduce_func=lambda d, _: np.amin(d, axis=1), working_memory=1000))
    )
    state = [min_dist]

    def step() -> object:
        idx = state[0].argmax()
        state[0] = np.minimum(state[0], pairwise_distances(x, x[[idx], :])[:, 0])
        return idx

    return step


def ours_coreset_stepper(x: torch.Tensor, labeled: torch.Tensor) -> Callable[[], object]:
    """One lbench k-center pick per call (world size 1)."""
    from lbench.strategies.coreset import min_sq_dist_to_set
    from lbench.strategies.sharded import _center_update, _CenterSource

    src = _CenterSource(x, None, None, "cpu")
    min_sq = min_sq_dist_to_set(src.x, labeled)  # type: ignore[arg-type]
    buf = torch.empty(src.n, dtype=min_sq.dtype)

    def step() -> object:
        idx = int(torch.argmax(min_sq))
        _center_update(src, src.row(idx), src.sq_norm[idx], min_sq, buf)
        min_sq[idx] = -1.0
        return idx

    return step


def interleaved(steppers: dict[str, Callable[[], object]], rounds: int, block: int = 25) -> dict[str, float]:
    """Median seconds per call of each stepper, in alternating blocks of ``block`` calls (``rounds`` calls each).

    Blocks, not single calls: numpy's OpenBLAS and torch's OpenMP threads spin for a while after a call,
    so alternating call by call would make each library pay for the other's spinning threads.
    """
    times: dict[str, list[float]] = {k: [] for k in steppers}
    for _ in range(max(1, rounds // block)):
        for name, fn in steppers.items():
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def _reader(t: torch.Tensor) -> Callable[[], object]:
    view = t.view(torch.int16) if t.element_size() == 2 else t.view(torch.int32)
    return view.amax


def _read_floor(*tensors: torch.Tensor, repeat: int = 5) -> float:
    """Seconds to read the bytes of ``tensors`` once (integer ``amax`` over a bit view; best of ``repeat``)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for t in tensors:
            view = t.view(torch.int16) if t.element_size() == 2 else t.view(torch.int32)
            view.amax()
        best = min(best, time.perf_counter() - t0)
    return best


def _synthetic(n: int, k: int, d: int, seed: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Peaked softmax probabilities and Gaussian embeddings, built in chunks (``dtype`` storage)."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.empty(n, k, dtype=dtype)
    emb = torch.empty(n, d, dtype=dtype)
    for s in range(0, n, 65536):
        e = min(n, s + 65536)
        probs[s:e] = torch.softmax(3.0 * torch.randn(e - s, k, generator=g), dim=1)
        emb[s:e] = torch.randn(e - s, d, generator=g)
    return probs, emb


def _lb_factors(probs: torch.Tensor, emb: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """LabelBench's float32 ``probs = onehot - preds`` and embeddings, as numpy (built in chunks)."""
    q = np.empty(tuple(probs.shape), dtype=np.float32)
    for s in range(0, probs.shape[0], 65536):
        p = probs[s : s + 65536].float().numpy()
        qc = -p
        qc[np.arange(len(qc)), p.argmax(axis=1)] += 1.0
        q[s : s + 65536] = qc
    return q, emb.float().numpy()


class Table:
    """Markdown rows, printed as they come."""

    def __init__(self) -> None:
        self.rows: list[str] = []
        print(
            "| size | algorithm | implementation | per step (ms) | vs LabelBench | vs plain read | B "
            "| time for B (s) | peak RSS (GiB) | note |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")

    def add(self, size: str, algo: str, impl: str, step: float, lb: float | None, floor: float | None,
            budget: int, mem: float | None, note: str = "") -> None:  # fmt: skip
        vs_lb = "" if lb is None else f"{lb / step:.1f}x"
        vs_floor = "" if floor is None else f"{step / floor:.2f}x"
        mem_s = "" if mem is None else f"{mem:.1f}"
        row = (
            f"| {size} | {algo} | {impl} | {step * 1e3:,.1f} | {vs_lb} | {vs_floor} | {budget:,} | "
            f"{step * budget:,.0f} | {mem_s} | {note} |"
        )
        self.rows.append(row)
        print(row, flush=True)


# --------------------------------------------------------------------------- parts


def part_100k(table: Table, args: argparse.Namespace) -> None:
    n, k, d, budget = 100_000, 100, 512, 1000
    size = "100k x 100 x 512"
    rounds = args.lb_picks
    probs, emb = _synthetic(n, k, d, 0, torch.float32)
    labeled = torch.randn(budget, d, generator=torch.Generator().manual_seed(1))
    q_np, h_np = _lb_factors(probs, emb)
    src = {"probs": probs, "embeddings": emb, "chunks": None, "chunk_size": 65536, "block_rows": None, "device": "cpu"}
    ones32, ones16 = torch.ones(n, k + d), torch.ones(n, k + d, dtype=torch.bfloat16)
    steppers = {
        "lb": lb_badge_stepper(q_np, h_np),
        "f32": ours_badge_stepper(storage_dtype=torch.float32, **src),
        "bf16": ours_badge_stepper(storage_dtype=torch.bfloat16, **src),
        "read32": _reader(ones32),
        "read16": _reader(ones16),
    }
    med = interleaved(steppers, rounds)
    note = f"median of {rounds} steps, in blocks alternating with ours"
    table.add(size, "BADGE", "LabelBench kernel (numpy f32/f64)", med["lb"], None, None, budget, None, note)
    for name, key, floor, sd in (
        ("float32", "f32", "read32", torch.float32),
        ("bfloat16", "bf16", "read16", torch.bfloat16),
    ):
        reset_peak_rss()
        total, out = _timed(
            lambda sd=sd: badge_kmeanspp(probs, emb, budget, torch.Generator().manual_seed(0), storage_dtype=sd)
        )
        table.add(size, "BADGE", f"lbench {name} storage", med[key], med["lb"], med[floor], budget, _peak_gib(),
                  f"median of {rounds} steps (alternating blocks); full badge_kmeanspp B=1000: {total:.1f} s; "
                  f"read {med[floor] * 1e3:.1f} ms")  # fmt: skip
    del steppers, q_np, h_np, ones32, ones16
    gc.collect()
    steppers = {
        "lb": lb_coreset_stepper(emb.numpy(), labeled.numpy()),
        "ours": ours_coreset_stepper(emb, labeled),
        "read": _reader(emb),
    }
    med = interleaved(steppers, rounds)
    table.add(size, "Coreset", "LabelBench kernel (sklearn)", med["lb"], None, None, budget, None, note)
    reset_peak_rss()
    total, out = _timed(lambda: k_center_greedy(emb, labeled, budget))
    _, _, lb_cs = labelbench_coreset_steps(emb.numpy(), labeled.numpy(), 50)
    same = sum(int(a) == b for a, b in zip(out[: len(lb_cs)].tolist(), lb_cs, strict=True))
    table.add(size, "Coreset", "lbench float32", med["ours"], med["lb"], med["read"], budget, _peak_gib(),
              f"median of {rounds} steps (alternating blocks); {same}/{len(lb_cs)} first picks = LabelBench's; "
              f"full k_center_greedy B=1000: {total:.1f} s; read {med['read'] * 1e3:.1f} ms")  # fmt: skip


def part_imagenet(table: Table, args: argparse.Namespace) -> None:
    n, k, d, budget = 1_281_167, 1000, 512, 50_000
    size = "1.28M x 1000 x 512"
    if _available_gib() < 13:
        print(f"skipping the 1.28M part: {_available_gib():.1f} GiB available, 13 needed")
        return
    probs, emb = _synthetic(n, k, d, 2, torch.float16)  # the scoring shards' dtype: 3.9 GB
    steps = args.steps
    results = {}
    lb_step = None
    for name, sd in () if args.stream_only else (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        floor = _read_floor(torch.ones(n, k + d, dtype=sd), repeat=3)
        gc.collect()
        setup, step, mem = ours_badge_steps(
            steps, probs=probs, embeddings=emb, chunks=None, storage_dtype=sd, chunk_size=65536, block_rows=None,
            device="cpu",
        )  # fmt: skip
        results[name] = (step, mem, floor, setup)
        gc.collect()
    if not args.stream_only:
        # LabelBench: float32 numpy factors (7.7 GB)
        q_np, h_np = _lb_factors(probs, emb)
        reset_peak_rss()
        lb_step, lb_picks = labelbench_badge_steps(q_np, h_np, 1 + steps)
        table.add(size, "BADGE", "LabelBench kernel (numpy f32/f64)", lb_step, None, None, budget, _peak_gib(),
                  f"{steps} steps, extrapolated")  # fmt: skip
        del q_np, h_np
        gc.collect()
    for name, (step, mem, floor, setup) in results.items():
        table.add(size, "BADGE", f"lbench {name} storage (in memory)", step, lb_step, floor, budget, mem,
                  f"median of {steps} steps; factors built in {setup:.0f} s; read {floor * 1e3:.0f} ms")  # fmt: skip
    if args.stream:
        with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
            np.save(Path(folder) / "probs.npy", probs.numpy())
            np.save(Path(folder) / "embeddings.npy", emb.numpy())
            del probs, emb
            gc.collect()
            chunks = [(np.load(Path(folder) / "probs.npy", mmap_mode="r"),
                       np.load(Path(folder) / "embeddings.npy", mmap_mode="r"))]  # fmt: skip
            for scratch in (False, True) if args.stream_rebuild else (True,):
                with tempfile.TemporaryDirectory(dir=args.tmp) as scratch_dir:
                    setup, step, mem = ours_badge_steps(
                        max(1, steps // 2) if not scratch else steps, probs=None, embeddings=None, chunks=chunks,
                        storage_dtype=torch.bfloat16, chunk_size=None, block_rows=None, device="cpu",
                        scratch=scratch_dir if scratch else None,
                    )  # fmt: skip
                how = "bf16 factors written once to a scratch memmap" if scratch else "q rebuilt from probs each step"
                note = f"first pass {setup:.0f} s; {how}; RSS counts mapped pages"
                table.add(
                    size, "BADGE", "lbench streamed fp16 memmap -> bfloat16", step, lb_step, None, budget, mem, note
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["100k", "1.28M"], choices=["100k", "1.28M"])
    parser.add_argument("--lb-picks", type=int, default=200, help="interleaved timed steps at 100k (per kernel)")
    parser.add_argument("--steps", type=int, default=4, help="timed steps at 1.28M")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--no-stream", dest="stream", action="store_false", help="skip the streamed 1.28M row")
    parser.add_argument("--tmp", default=None, help="folder for the streamed run's memory-mapped files")
    parser.add_argument("--stream-only", action="store_true", help="1.28M: only the streamed rows")
    parser.add_argument("--stream-rebuild", action="store_true", help="also stream without a scratch copy (slow)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} CPU cores, {_available_gib():.1f} GiB available, torch "
        f"{torch.__version__}, numpy {np.__version__}, {args.threads} torch threads, load {os.getloadavg()[0]:.2f}\n"
    )
    table = Table()
    if "100k" in args.parts:
        part_100k(table, args)
    if "1.28M" in args.parts:
        part_imagenet(table, args)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
