"""Benchmark the BADGE and coreset selection kernels against straightforward baselines.

Rows per pool size (same random data for all):

* ``lbench``: :func:`lbench.strategies.badge.badge_kmeanspp` / :func:`lbench.strategies.coreset.k_center_greedy`.
* ``numpy f64 sequential``: the LabelBench-style approach, written here from its description: float64
  numpy, one pass per pick over the distances to the newest center, D² sampling through
  ``scipy.stats.rv_discrete`` rebuilt every pick (BADGE); ``sklearn.metrics.pairwise_distances``
  per pick after a ``pairwise_distances_chunked`` pass to the labeled set (coreset).
* ``materialized``: BADGE on the explicit ``n x (K*d)`` gradient matrix (float32 torch), only where
  it fits in half the available memory.

Usage::

    python benchmarks/bench_select.py                      # 20k x 10 x 512 (200 picks), 100k x 100 x 512 (1000 picks)
    python benchmarks/bench_select.py --quick              # baselines run 1/10 of the picks, time extrapolated
    python benchmarks/bench_select.py --sizes 20000x10x512x200 --device cuda --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
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

# --------------------------------------------------------------------------- memory measurement


def _reset_cpu_peak() -> int | None:
    """Reset the peak RSS (Linux ``clear_refs``); return the current RSS in KiB (``None``: unsupported)."""
    return proc_status_kib("VmRSS") if reset_peak_rss() else None


def measure(fn: Callable[[], object], device: str, repeat: int) -> tuple[float, float | None, object]:
    """Run ``fn`` ``repeat`` times; return (best seconds, peak extra MiB of the last run, result)."""
    best, peak, result = float("inf"), None, None
    for _ in range(repeat):
        result = None
        gc.collect()
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            base = _reset_cpu_peak()
        t0 = time.perf_counter()
        result = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
        if device == "cuda":
            peak = (torch.cuda.max_memory_allocated() - base) / 2**20
        else:
            hwm = proc_status_kib("VmHWM")
            peak = None if base is None or hwm is None else (hwm - base) / 1024
    return best, peak, result


# --------------------------------------------------------------------------- baselines


def badge_numpy_f64(probs: np.ndarray, emb: np.ndarray, budget: int, seed: int) -> list[int]:
    """Factorized BADGE k-means++, float64 numpy, one distance pass per pick, rv_discrete sampling."""
    rng = np.random.default_rng(seed)
    p = probs.astype(np.float64)
    h = emb.astype(np.float64)
    q = -p
    q[np.arange(len(q)), p.argmax(axis=1)] += 1.0
    qn, hn = (q * q).sum(axis=1), (h * h).sum(axis=1)

    def dist_to(c: int) -> np.ndarray:
        d2 = qn * hn + qn[c] * hn[c] - 2.0 * (q @ q[c]) * (h @ h[c])
        return np.sqrt(np.clip(d2, 0.0, None))

    picks = [int(np.argmax(qn * hn))]
    dist = dist_to(picks[0])
    while len(picks) < budget:
        w = dist**2
        w[picks] = 0.0
        sampler = stats.rv_discrete(name="d2", values=(np.arange(len(w)), w / w.sum()))
        c = int(sampler.rvs(random_state=rng))
        picks.append(c)
        dist = np.minimum(dist, dist_to(c))
    return picks


def badge_materialized(probs: torch.Tensor, emb: torch.Tensor, budget: int, seed: int) -> list[int]:
    """BADGE k-means++ on the explicit n x (K*d) gradient matrix (float32 torch)."""
    gen = torch.Generator().manual_seed(seed)
    q = -probs.float()
    q[torch.arange(q.shape[0]), probs.argmax(dim=1)] += 1.0
    g = (q[:, :, None] * emb.float()[:, None, :]).reshape(q.shape[0], -1)
    gn = g.square().sum(dim=1)
    picks = [int(gn.argmax())]
    min_sq = (gn + gn[picks[0]] - 2.0 * (g @ g[picks[0]])).clamp_min_(0.0)
    min_sq[picks[0]] = 0.0
    while len(picks) < budget:
        cum = torch.cumsum(min_sq, 0, dtype=torch.float64)
        u = torch.rand((), generator=gen, dtype=torch.float64).to(cum.device)
        c = min(int(torch.searchsorted(cum, (u * cum[-1]).reshape(1), right=True)), len(cum) - 1)
        picks.append(c)
        torch.minimum(min_sq, (gn + gn[c] - 2.0 * (g @ g[c])).clamp_min_(0.0), out=min_sq)
        min_sq[c] = 0.0
    return picks


def coreset_numpy_f64(emb: np.ndarray, labeled: np.ndarray, budget: int) -> list[int]:
    """Greedy k-center, float64, sklearn pairwise distances per pick."""
    x = emb.astype(np.float64)
    lab = labeled.astype(np.float64)
    min_d = np.concatenate([blk.min(axis=1) for blk in pairwise_distances_chunked(x, lab, working_memory=1024)])
    picks: list[int] = []
    for _ in range(budget):
        c = int(np.argmax(min_d))
        picks.append(c)
        min_d = np.minimum(min_d, pairwise_distances(x, x[[c]]).ravel())
    return picks


# --------------------------------------------------------------------------- driver


def _available_bytes(device: str) -> int:
    if device == "cuda":
        return torch.cuda.mem_get_info()[0]
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def make_data(n: int, k: int, d: int, n_labeled: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random probabilities (peaked softmax), embeddings and labeled embeddings, float32 CPU."""
    gen = torch.Generator().manual_seed(seed)
    probs = torch.softmax(3.0 * torch.randn(n, k, generator=gen), dim=1)
    emb = torch.randn(n, d, generator=gen)
    labeled = torch.randn(n_labeled, d, generator=gen)
    return probs, emb, labeled


def _fmt_mem(mib: float | None) -> str:
    return "n/a" if mib is None else f"{max(mib, 0.0):,.0f}"


def run_size(n: int, k: int, d: int, budget: int, args: argparse.Namespace) -> list[str]:
    """Benchmark one pool size; return markdown table rows."""
    dev = args.device
    probs, emb, labeled = make_data(n, k, d, n_labeled=budget)
    probs_d, emb_d, labeled_d = probs.to(dev), emb.to(dev), labeled.to(dev)
    probs_np, emb_np, labeled_np = probs.numpy(), emb.numpy(), labeled.numpy()
    base_budget = max(2, budget // 10) if args.quick else budget
    scale = budget / base_budget
    size = f"{n:,} x {k} x {d}, B={budget}"
    rows: list[str] = []

    def row(algo: str, impl: str, secs: float, mem: float | None, ref: float | None, note: str = "") -> None:
        speed = "" if ref is None else f"{ref / secs:.1f}x"
        rows.append(f"| {size} | {algo} | {impl} | {secs:.2f} | {_fmt_mem(mem)} | {speed} | {note} |")
        print(rows[-1], flush=True)

    # BADGE
    note = f"{base_budget} picks, x{scale:g} extrapolated" if scale != 1 else ""
    t_np, m_np, r_np = measure(lambda: badge_numpy_f64(probs_np, emb_np, base_budget, 0), "cpu", args.repeat)
    t_np *= scale
    row("BADGE", "numpy f64 sequential (cpu)", t_np, m_np, None, note)
    first = r_np[0]
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        gen_fn = lambda dt=dtype: badge_kmeanspp(probs_d, emb_d, budget, torch.Generator().manual_seed(0), 65536, dt)  # noqa: E731
        t, m, r = measure(gen_fn, dev, args.repeat)
        ok = "first pick = baseline" if int(r[0]) == first else "FIRST PICK DIFFERS"
        row("BADGE", f"lbench {name} ({dev})", t, m, t_np, ok)
    need = n * k * d * 4
    if need <= _available_bytes("cpu") // 2:
        t, m, _ = measure(lambda: badge_materialized(probs, emb, budget, 0), "cpu", args.repeat)
        row("BADGE", "materialized n x Kd f32 (cpu)", t, m, t_np)
    else:
        rows.append(f"| {size} | BADGE | materialized n x Kd f32 | does not fit ({need / 1e9:.1f} GB) | | | |")
        print(rows[-1], flush=True)

    # Coreset
    t_np, m_np, r_np = measure(lambda: coreset_numpy_f64(emb_np, labeled_np, base_budget), "cpu", args.repeat)
    t_np *= scale
    row("Coreset", "sklearn f64 sequential (cpu)", t_np, m_np, None, note)
    t, m, r = measure(lambda: k_center_greedy(emb_d, labeled_d, budget), dev, args.repeat)
    same = sum(int(a) == b for a, b in zip(r[: len(r_np)].tolist(), r_np, strict=True))
    row("Coreset", f"lbench float32 ({dev})", t, m, t_np, f"{same}/{len(r_np)} picks = baseline")
    return rows


def _parse_size(text: str) -> tuple[int, int, int, int]:
    parts = [int(p) for p in text.lower().split("x")]
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"size must be NxKxDxBUDGET, got {text!r}")
    return parts[0], parts[1], parts[2], parts[3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=_parse_size, nargs="+", default=["20000x10x512x200", "100000x100x512x1000"])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the fastest is reported")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="baselines run 1/10 of the picks, time extrapolated")
    args = parser.parse_args()
    args.sizes = [_parse_size(s) if isinstance(s, str) else s for s in args.sizes]
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA GPU is available")
    torch.set_num_threads(args.threads)
    gpu = f", GPU {torch.cuda.get_device_name()}" if args.device == "cuda" else ""
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"numpy {np.__version__}, {args.threads} torch threads{gpu}\n"
    )
    print("| pool (n x K x d, budget) | algorithm | implementation | seconds | peak extra MiB | speed-up | check |")
    print("|---|---|---|---|---|---|---|")
    for n, k, d, budget in args.sizes:
        run_size(n, k, d, budget, args)


if __name__ == "__main__":
    main()
