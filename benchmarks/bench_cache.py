"""Benchmark the embedding cache: build speed, bytes on disk, time to open a store and read a view.

Rows (one run, same images for every row):

* ``bare forward``: ``encoder.encode`` on the split's images, batched in memory beforehand (the
  encoder's speed alone: no data loading, no writing).
* ``plain loop``: a ``DataLoader`` over the split + ``encoder.encode`` (the pre-Lightning cache
  loop, without its writes).
* ``lbench build``: ``EmbeddingCache.ensure`` from a cold cache (Lightning predict, writer,
  finite checks, flushes, checksums, meta.json per chunk, view-0 statistics).
* ``lbench build, 1 weak + 1 strong``: adding two augmented views to that cache (their seeded
  transforms run per item), per image embedded.

Then the bytes per image of the fp16 store vs a float64 ``.npy`` of the same values, and the time
to open a synthetic ``rows x D`` store through ``EmbeddingCache.ensure`` and read one view
into memory (with and without checksum verification), from the page cache (warm) and after
evicting the file from it (cold, ``posix_fadvise(DONTNEED)``), vs ``np.load`` of a float64 file.

Usage::

    python benchmarks/bench_cache.py                          # Fashion-MNIST 10k pool, EfficientNet-Lite0
    python benchmarks/bench_cache.py --data digits --repeat 1 # quick
    python benchmarks/bench_cache.py --threads 1              # on a machine shared with other jobs
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lbench.cache import EmbeddingCache, cache_fingerprint  # noqa: E402
from lbench.cache.embedding_cache import view_stats  # noqa: E402
from lbench.cache.files import checksum, create, open_array  # noqa: E402
from lbench.cache.meta import Meta, fingerprint_key  # noqa: E402
from lbench.console import quiet_libraries  # noqa: E402
from lbench.views import ViewRecipe  # noqa: E402


def _split(name: str, pool: int) -> Any:
    if name == "digits":
        from lbench.data import Digits

        return Digits().pool_split()
    from lbench.data import FashionMNIST

    return FashionMNIST(pool_size=pool).pool_split()


def _bare(encoder: Any, batches: list[torch.Tensor], device: torch.device) -> float:
    t0 = time.perf_counter()
    for images in batches:
        encoder.encode(images.to(device)).float().cpu()
    return time.perf_counter() - t0


def _plain_loop(encoder: Any, split: Any, batch_size: int, device: torch.device) -> float:
    t0 = time.perf_counter()
    for images, _, _ in DataLoader(split, batch_size=batch_size, shuffle=False):
        encoder.encode(images.to(device)).float().cpu().numpy().astype(np.float16)
    return time.perf_counter() - t0


def _build(
    split: Any, encoder: Any, args: argparse.Namespace, views: ViewRecipe | None = None, root: str = ""
) -> float:
    cache = EmbeddingCache(root, batch_size=args.batch_size, device=args.device, progress=False)
    t0 = time.perf_counter()
    cache.ensure(split, encoder, views)
    return time.perf_counter() - t0


def bench_build(args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    from lbench.encoders import EfficientNetLite0Encoder

    split = _split(args.data, args.pool)
    encoder = EfficientNetLite0Encoder()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))  # fmt: skip
    encoder = encoder.to(device).eval()
    n = len(split)
    batches = [torch.stack([split[i][0] for i in range(a, min(a + args.batch_size, n))])
               for a in range(0, n, args.batch_size)]  # fmt: skip
    encoder.encode(batches[0].to(device))  # warm-up
    best: dict[str, float] = {}
    aug = 0.0
    for _ in range(args.repeat):
        best["bare"] = min(best.get("bare", 1e9), _bare(encoder, batches, device))
        best["loop"] = min(best.get("loop", 1e9), _plain_loop(encoder, split, args.batch_size, device))
        with tempfile.TemporaryDirectory() as root:
            best["build"] = min(best.get("build", 1e9), _build(split, encoder, args, root=root))
            aug = _build(split, encoder, args, ViewRecipe(weak_views=1, strong_views=1), root=root)
    rows = []
    base = n / best["bare"]
    for key, label in (("bare", "bare forward (images in memory)"), ("loop", "plain loop (DataLoader + forward)"),
                       ("build", "lbench build (plain view, cold cache)")):  # fmt: skip
        rate = n / best[key]
        rows.append((label, f"{best[key]:.2f}", f"{rate:,.0f}", f"{100 * rate / base:.0f}%"))
    rate = 2 * n / aug
    rows.append(("lbench build, + 1 weak + 1 strong view", f"{aug:.2f}", f"{rate:,.0f}", f"{100 * rate / base:.0f}%"))
    print(f"\nBuild: {split.name}, {n} images, EfficientNet-Lite0 ({encoder.embed_dim}-d), batch {args.batch_size}, "
          f"{device}, best of {args.repeat}\n")  # fmt: skip
    _table(["row", "seconds", "images/s", "vs bare forward"], rows)
    return rows


def bench_bytes(args: argparse.Namespace) -> None:
    from lbench.encoders import EfficientNetLite0Encoder

    split = _split(args.data, args.pool)
    encoder = EfficientNetLite0Encoder()
    with tempfile.TemporaryDirectory() as root:
        store = EmbeddingCache(root, batch_size=args.batch_size, device=args.device, progress=False).ensure(
            split, encoder
        )
        ours = store.path(0).stat().st_size
        f64 = Path(root) / "f64.npy"
        np.save(f64, np.asarray(store.view(0), dtype=np.float64))
        theirs = f64.stat().st_size
        meta = (store.folder / "meta.json").stat().st_size
    n = len(split)
    print(f"\nBytes on disk per image ({split.name}, {n} x {store.dim}, one view)\n")
    _table(["store", "bytes / image", "ratio"], [
        ("lbench fp16 .npy", f"{ours / n:,.1f}", "1.00"),
        ("lbench fp16 .npy + meta.json", f"{(ours + meta) / n:,.1f}", f"{(ours + meta) / ours:.2f}"),
        ("float64 .npy (LabelBench stores float64)", f"{theirs / n:,.1f}", f"{theirs / ours:.2f}"),
    ])  # fmt: skip


class _FakeSplit:
    """A split that is only a name and a fingerprint (the store is written directly)."""

    def __init__(self, n: int, dim: int) -> None:
        self.name, self.n, self.fingerprint, self.content_hash = f"synthetic-{dim}", n, {"synthetic": dim}, "0" * 16

    def __len__(self) -> int:
        return self.n


class _FakeEncoder:
    def __init__(self, dim: int) -> None:
        self.embed_dim = dim

    def fingerprint(self) -> dict[str, Any]:
        return {"encoder": "synthetic", "dim": self.embed_dim}


def _write_synthetic(root: Path, n: int, dim: int) -> tuple[_FakeSplit, _FakeEncoder]:
    split, enc = _FakeSplit(n, dim), _FakeEncoder(dim)
    fp = cache_fingerprint(split, enc)  # type: ignore[arg-type]
    folder = root / f"{split.name}-{fingerprint_key(fp)}"
    folder.mkdir(parents=True)
    meta = Meta.new(folder, fp, n, dim, 1280)
    meta.add_view("plain", {"view": "plain"})
    create(meta.path("plain"), (n, dim))
    array = open_array(meta.path("plain"), (n, dim), writable=True)
    g = np.random.default_rng(0)
    for chunk in range(meta.num_chunks):
        a, b = meta.rows(chunk)
        array[a:b] = g.standard_normal((b - a, dim), dtype=np.float32).astype(np.float16)
        meta.mark_done("plain", chunk, checksum(array[a:b]))
    array.flush()
    del array
    meta.data["stats"] = view_stats(meta)
    meta.write()
    return split, enc


def _evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def bench_open(args: argparse.Namespace) -> None:
    rows = []
    for dim in args.dims:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            split, enc = _write_synthetic(root, args.rows, dim)
            f64 = root / "f64.npy"
            path = next(root.glob("synthetic-*/plain.npy"))
            np.save(f64, np.load(path).astype(np.float64))
            for verify in (True, False):
                for cold in (True, False):
                    if cold:
                        _evict(path)
                    t0 = time.perf_counter()
                    store = EmbeddingCache(root, verify=verify).ensure(split, enc)  # type: ignore[arg-type]
                    x = np.array(store.view(0))
                    took = time.perf_counter() - t0
                    what = f"lbench ensure + view(0) into memory{'' if verify else ', verify=False'}"
                    rows.append((f"{args.rows:,} x {dim}", what, "cold" if cold else "warm", f"{took:.3f}"))
                    assert x.shape == (args.rows, dim)
            for cold in (True, False):
                if cold:
                    _evict(f64)
                t0 = time.perf_counter()
                np.load(f64)
                rows.append((f"{args.rows:,} x {dim}", "np.load float64 .npy", "cold" if cold else "warm",
                             f"{time.perf_counter() - t0:.3f}"))  # fmt: skip
    print("\nOpen a store and read one view into memory (seconds)\n")
    _table(["pool", "what", "page cache", "seconds"], rows)


def _table(header: list[str], rows: list[tuple[str, ...]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=["fashion_mnist", "digits"], default="fashion_mnist")
    p.add_argument("--pool", type=int, default=10000, help="Fashion-MNIST pool size")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--rows", type=int, default=60000, help="rows of the synthetic store")
    p.add_argument("--dims", type=lambda s: [int(d) for d in s.split(",")], default=[624, 1024])
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: one per core)")
    p.add_argument("--skip", default="", help="comma list of sections to skip: build,bytes,open")
    args = p.parse_args()
    quiet_libraries()
    torch.set_num_threads(args.threads or min(torch.get_num_threads(), os.cpu_count() or 1))
    cpu = platform.processor() or platform.machine()
    print(f"Machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"numpy {np.__version__}, Python {platform.python_version()}")  # fmt: skip
    skip = set(args.skip.split(","))
    if "build" not in skip:
        bench_build(args)
    if "bytes" not in skip:
        bench_bytes(args)
    if "open" not in skip:
        bench_open(args)


if __name__ == "__main__":
    main()
