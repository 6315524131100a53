"""ImageDataModule: images of the labeled set, the pool and the test split, for end-to-end fine-tuning."""

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch import nn

from lbench.data.base import ArraySplit, ImageSplit, PoolDataset
from lbench.data.images import EpochOrder, ImageDataModule
from lbench.errors import ConfigError, DataError
from lbench.modules.base import BaseTask
from lbench.ssl.flexmatch import FlexMatch

K = 3  # classes


def _array_split(name: str, n: int, size: int, seed: int) -> ArraySplit:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    return ArraySplit(name, images, torch.arange(n) % K)


class Tiny(PoolDataset):
    """24 pool and 9 test items, random RGB ``size`` x ``size`` images."""

    class_names = ("a", "b", "c")

    def __init__(self, size: int = 10) -> None:
        self.size = size

    def pool_split(self) -> ArraySplit:
        return _array_split("tiny-train", 24, self.size, 0)

    def test_split(self) -> ArraySplit:
        return _array_split("tiny-test", 9, self.size, 1)


class ListSplit(ImageSplit):
    """Images of any size, from a list."""

    def __init__(self, name: str, images: list[torch.Tensor]) -> None:
        self.name, self.images = name, images
        self.targets = torch.arange(len(images)) % K
        self.fingerprint = {"name": name}

    def load_image(self, i: int) -> torch.Tensor:
        return self.images[i]

    def item_id(self, i: int) -> str:
        return f"{self.name}/{i}"

    def manifest(self) -> dict:
        return {"n": len(self)}


class Mixed(PoolDataset):
    """Pool images of two sizes (10x10 and 12x8)."""

    class_names = ("a", "b", "c")

    def pool_split(self) -> ListSplit:
        return ListSplit("mixed-train", [torch.rand(3, 10, 10) if i % 2 else torch.rand(3, 12, 8) for i in range(8)])

    def test_split(self) -> ListSplit:
        return ListSplit("mixed-test", [torch.rand(3, 10, 10) for _ in range(4)])


class Holder:
    """What the DataModule reads of a trainer."""

    def __init__(self, model=None, epoch: int = 0, world_size: int = 1, global_rank: int = 0) -> None:
        self.lightning_module, self.current_epoch = model, epoch
        self.world_size, self.global_rank = world_size, global_rank


LABELED = torch.tensor([0, 2, 3, 5, 7, 8, 11, 13, 17, 19])


def make_dm(dataset: PoolDataset | None = None, labeled: torch.Tensor = LABELED, **kwargs) -> ImageDataModule:
    dm = ImageDataModule(dataset or Tiny(), **{"batch_size": 4, **kwargs})
    pool = dm.new_pool()
    truth = dm.make_oracle().query(labeled)
    pool.add_labels(labeled, (truth + 1) % K, round=0)  # labels that differ from ground truth
    dm.pool = pool
    dm.setup("fit")
    return dm


def batches(loader) -> list[dict]:
    return list(loader)


def cat(loader, key: str) -> torch.Tensor:
    return torch.cat([b[key] for b in loader])


def plain(dm: ImageDataModule, index: torch.Tensor) -> torch.Tensor:
    return torch.stack([dm.pool_split[int(i)][0] for i in index])


def test_train_batches_hold_labeled_items_with_the_pools_labels_augmented():
    dm = make_dm()
    dm.trainer = Holder()
    loader = dm.train_dataloader()
    assert isinstance(loader, torch.utils.data.DataLoader)
    got = batches(loader)
    assert all(set(b) == {"x", "y", "index"} and b["x"].shape[1:] == (3, 10, 10) for b in got)
    index, y, x = cat(got, "index"), cat(got, "y"), cat(got, "x")
    assert sorted(index.tolist()) == LABELED.tolist()  # each labeled item once, nothing else
    assert y.equal(dm.pool.labels[index]) and not y.equal(dm.pool_split.targets[index])  # the pool's labels
    assert x.dtype == torch.float32 and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    differs = [not torch.allclose(a, b) for a, b in zip(x, plain(dm, index), strict=True)]
    assert sum(differs) >= len(differs) - 1  # augmented (a crop of the whole image, unflipped, is rare)
    dm.augment = False
    x = cat(dm.train_dataloader(), "x")
    assert x.equal(plain(dm, cat(dm.train_dataloader(), "index")))


def _by_index(loader) -> dict[int, torch.Tensor]:
    return {int(i): x for b in loader for i, x in zip(b["index"], b["x"], strict=True)}


def test_augmentations_are_reproducible_per_seed_and_epoch_and_new_each_epoch():
    def epoch_batches(view_seed: int, epoch: int) -> list[dict]:
        dm = make_dm(view_seed=view_seed)
        dm.trainer = Holder(epoch=epoch)
        return batches(dm.train_dataloader())

    a, again = epoch_batches(0, 1), epoch_batches(0, 1)
    assert all(p["index"].equal(q["index"]) and p["x"].equal(q["x"]) for p, q in zip(a, again, strict=True))
    first, later, other = _by_index(epoch_batches(0, 0)), _by_index(a), _by_index(epoch_batches(1, 1))
    assert all(not torch.equal(first[i], later[i]) for i in first)  # a new crop each epoch
    assert all(not torch.equal(other[i], later[i]) for i in first)  # and per view_seed
    order = [torch.cat([b["index"] for b in epoch_batches(0, e)]) for e in (0, 1)]
    assert not order[0].equal(order[1])  # a new order each epoch


def test_a_cycled_epoch_gives_each_pass_new_augmentations():
    dm = make_dm(samples_per_epoch=25)
    dm.trainer = Holder()
    got = batches(dm.train_dataloader())
    index, x = cat(got, "index"), cat(got, "x")
    assert len(index) == 25 and set(index.tolist()) == set(LABELED.tolist())
    i = int(LABELED[0])
    copies = x[index == i]
    assert len(copies) >= 2 and not torch.equal(copies[0], copies[1])


def test_ssl_batches_pair_weak_and_strong_pool_images():
    dm = make_dm(batch_size=4)
    dm.trainer = Holder(model=SimpleNamespace(ssl=SimpleNamespace(uratio=3)))
    combined = dm.train_dataloader()
    got = []
    for item in combined:
        got.append(item[0] if isinstance(item, tuple) else item)
    assert len(got) == 3  # ceil(10 labeled / 4): every labeled batch has an unlabeled partner
    lb, ulb = got[0]["lb"], got[0]["ulb"]
    assert set(lb) == {"x", "y", "index"} and lb["x"].shape == (4, 3, 10, 10)
    assert set(ulb) == {"x_w", "x_s", "index"} and ulb["x_w"].shape == ulb["x_s"].shape == (12, 3, 10, 10)
    assert not torch.equal(ulb["x_w"], ulb["x_s"])
    seen = torch.cat([b["ulb"]["index"] for b in got])
    assert len(seen) == 3 * 12 and set(seen.tolist()) == set(range(24))  # the whole pool, labeled items included
    assert torch.cat([b["lb"]["index"] for b in got]).sort().values.equal(LABELED)


class TinyTask(BaseTask):
    """A linear classifier on flattened images."""

    def __init__(self, ssl: FlexMatch | None = None) -> None:
        super().__init__(ssl=ssl)

    def configure_models(self) -> None:
        self.hparams.num_classes = K
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, K))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_flexmatch_fits_validates_tests_and_predicts_on_images():
    dm = make_dm(image_size=8, val_fraction=0.3)
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)  # fmt: skip
    model = TinyTask(ssl=FlexMatch(uratio=2))
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step > 0 and "val/acc" in trainer.callback_metrics
    assert "test/acc" in trainer.test(model, datamodule=dm, verbose=False)[0]
    out = trainer.predict(model, datamodule=dm)
    assert torch.cat([o["index"] for o in out]).equal(torch.arange(24))


def test_validation_split_is_disjoint_from_training_and_plain():
    dm = make_dm(labeled=torch.arange(20), val_fraction=0.4, val_seed=3)
    dm.trainer = Holder()
    train, val = cat(dm.train_dataloader(), "index"), batches(dm.val_dataloader())
    val_index = cat(val, "index")
    assert set(train.tolist()).isdisjoint(val_index.tolist()) and len(val_index) > 0
    assert sorted(train.tolist() + val_index.tolist()) == list(range(20))
    assert val_index.equal(dm.val_mask().nonzero().flatten()[dm.val_mask().nonzero().flatten() < 20])
    assert cat(val, "y").equal(dm.pool.labels[val_index]) and cat(val, "x").equal(plain(dm, val_index))
    assert make_dm().val_dataloader() == []  # val_fraction 0: no validation split


def test_test_and_predict_cover_every_item_in_order():
    dm = make_dm(eval_batch_size=4)
    test = batches(dm.test_dataloader())
    assert [len(b["index"]) for b in test] == [4, 4, 1]
    assert cat(test, "index").equal(torch.arange(9)) and cat(test, "y").equal(dm.test_split.targets)
    assert cat(test, "x").equal(torch.stack([dm.test_split[i][0] for i in range(9)]))
    pred = batches(dm.predict_dataloader())
    assert all(set(b) == {"x", "index"} for b in pred)
    assert cat(pred, "index").equal(torch.arange(24)) and cat(pred, "x").equal(plain(dm, torch.arange(24)))
    shards = []
    for rank in range(4):  # under DDP: every test item exactly once, no padding
        dm.trainer = Holder(world_size=4, global_rank=rank)
        shards.append(cat(dm.test_dataloader(), "index"))
    assert sorted(torch.cat(shards).tolist()) == list(range(9))


def test_image_size_resizes_every_item_to_a_square():
    dm = make_dm(image_size=16)
    dm.trainer = Holder(model=SimpleNamespace(ssl=SimpleNamespace(uratio=1)))
    item = next(iter(dm.train_dataloader()))
    lb, ulb = (item[0] if isinstance(item, tuple) else item).values()
    assert lb["x"].shape[1:] == ulb["x_w"].shape[1:] == ulb["x_s"].shape[1:] == (3, 16, 16)
    x = next(iter(dm.predict_dataloader()))["x"]
    assert x.shape[1:] == (3, 16, 16) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert next(iter(dm.test_dataloader()))["x"].shape[1:] == (3, 16, 16)
    dm = make_dm(Mixed(), labeled=torch.arange(8), image_size=9)
    assert next(iter(dm.predict_dataloader()))["x"].shape == (8, 3, 9, 9)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_images_of_different_sizes_are_one_clear_error(num_workers):
    dm = make_dm(Mixed(), labeled=torch.arange(8), num_workers=num_workers)
    with pytest.raises(DataError, match="different sizes") as err:
        next(iter(dm.predict_dataloader()))
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    assert "image_size" in message and "3x10x10" in message and "3x12x8" in message


def test_worker_processes_serve_the_same_batches():
    def serve(num_workers: int) -> list:
        dm = make_dm(num_workers=num_workers, samples_per_epoch=13)
        dm.trainer = Holder(model=SimpleNamespace(ssl=SimpleNamespace(uratio=2)), epoch=2)
        out = [item[0] if isinstance(item, tuple) else item for item in dm.train_dataloader()]
        return [*out, *dm.predict_dataloader()]

    a, b = serve(0), serve(2)
    assert len(a) == len(b)
    for p, q in zip(a, b, strict=True):
        for key in p:
            if key in ("lb", "ulb"):
                assert all(p[key][k].equal(q[key][k]) for k in p[key])
            else:
                assert p[key].equal(q[key])


def test_epoch_order_is_seeded_per_epoch():
    epoch = [0]
    order = EpochOrder(10, 6, seed=0, epoch=lambda: epoch[0])
    a = list(order)
    assert len(a) == 6 and {e for e, _ in a} == {0} and len({p for _, p in a}) == 6
    assert a == list(order)
    epoch[0] = 1
    b = list(order)
    assert {e for e, _ in b} == {1} and [p for _, p in b] != [p for _, p in a]


def test_pool_file_state_and_nothing_to_prepare(tmp_path):
    dm = make_dm()
    assert dm.prepare_embeddings() == 0.0 and dm.encoder is None and dm.pool_size == 24 and dm.num_classes == K
    path = tmp_path / "pool.json"
    dm.pool.save(path)
    fresh = ImageDataModule(Tiny(), pool_file=str(path))
    fresh.setup("fit")
    assert fresh.pool.labels.equal(dm.pool.labels)
    restored = ImageDataModule(Tiny())
    restored.load_state_dict(dm.state_dict())
    assert restored.pool.labels.equal(dm.pool.labels)


def test_bad_settings_are_config_errors():
    for kwargs, match in [
        ({"batch_size": 0}, "batch_size"),
        ({"eval_batch_size": 0}, "eval_batch_size"),
        ({"image_size": -2}, "image_size"),
        ({"num_workers": -1}, "num_workers"),
        ({"samples_per_epoch": -1}, "samples_per_epoch"),
        ({"val_fraction": 1.0}, "val_fraction"),
    ]:
        with pytest.raises(ConfigError, match=match):
            ImageDataModule(Tiny(), **kwargs)
    with pytest.raises(ConfigError, match="no labels yet"):
        ImageDataModule(Tiny()).train_dataloader()
    with pytest.raises(ConfigError, match="no labeled items"):
        make_dm(labeled=torch.empty(0, dtype=torch.long)).train_dataloader()
