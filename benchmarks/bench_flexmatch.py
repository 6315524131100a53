"""FlexMatch vs supervised training of the proxy on cached views (Fashion-MNIST main-job setup).

For each number of labels (a random labeled set per seed, the same for both methods), trains the
linear proxy (a) supervised on the plain view, (b) supervised on weak views, (c) with FlexMatch
(weak + strong views of the whole pool), and prints test accuracy (mean and range over seeds) and
seconds per fit. Usage::

    python benchmarks/bench_flexmatch.py [--labels 50 100 200 1000] [--seeds 0 1 2] [--epochs 10]
"""

from __future__ import annotations

import argparse
import copy
import time

import lightning as L
import torch

from lbench.console import quiet_libraries
from lbench.data import FashionMNIST
from lbench.data.embeddings import EmbeddingDataModule
from lbench.encoders import EfficientNetLite0Encoder
from lbench.modules import ProxyClassifier
from lbench.ssl.flexmatch import FlexMatch


def fit_and_test(model, dm, epochs: int, seed: int) -> tuple[float, float]:
    L.seed_everything(seed, verbose=False)
    trainer = L.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")  # fmt: skip
    t0 = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    seconds = time.perf_counter() - t0
    acc = trainer.test(model, datamodule=dm, verbose=False)[0]["test/acc"]
    return float(acc), seconds


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--labels", type=int, nargs="+", default=[50, 100, 200, 1000])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--p_cutoff", type=float, default=0.95)
    p.add_argument("--cache_dir", default="checkpoints/cache")
    p.add_argument("--labeled_views", default="weak", choices=["weak", "plain", "plain+weak"])
    args = p.parse_args()
    quiet_libraries()
    encoder = EfficientNetLite0Encoder(image_size=64, features="blocks456")
    views = EmbeddingDataModule(FashionMNIST(pool_size=10000), encoder, cache_dir=args.cache_dir,
                                weak_views=2, strong_views=2, labeled_views=args.labeled_views)  # fmt: skip
    plain = copy.copy(views)
    plain.views = type(views.views)()  # plain view only: supervised as the main job trains
    views.setup("fit")
    plain.pool_store, plain.test_store = None, None
    plain.setup("fit")
    methods = {
        "supervised (plain view)": (plain, lambda: ProxyClassifier(lr=0.003, weight_decay=0.01)),
        f"supervised ({args.labeled_views} views)": (views, lambda: ProxyClassifier(lr=0.003, weight_decay=0.01)),
        f"FlexMatch ({args.labeled_views} labeled views)": (
            views,
            lambda: ProxyClassifier(lr=0.003, weight_decay=0.01, ssl=FlexMatch(p_cutoff=args.p_cutoff)),
        ),
    }
    oracle = views.make_oracle()
    print(f"| labels | {' | '.join(methods)} |")
    print("|---|" + "---|" * len(methods))
    for n in args.labels:
        cells = []
        for dm, make in methods.values():
            accs, secs = [], []
            for seed in args.seeds:
                idx = torch.randperm(dm.pool_size, generator=torch.Generator().manual_seed(seed))[:n]
                pool = dm.new_pool()
                pool.add_labels(idx, oracle.query(idx), round=0)
                dm.pool = pool
                acc, sec = fit_and_test(make(), dm, args.epochs, seed)
                accs.append(100 * acc)
                secs.append(sec)
            mean = sum(accs) / len(accs)
            cells.append(f"{mean:.2f} [{min(accs):.2f}, {max(accs):.2f}], {sum(secs) / len(secs):.1f} s")
        print(f"| {n} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
