"""PoolDataModule: the pool file, validation split and DDP evaluation shared by both DataModules."""

import pytest
import torch

from lbench.data.digits import Digits
from lbench.data.embeddings import EmbeddingDataModule
from lbench.data.images import ImageDataModule
from lbench.data.pool_module import PoolDataModule
from lbench.encoders import PixelEncoder
from lbench.errors import ConfigError, DataError
from lbench.pool import LabelPool


class Holder:
    def __init__(self, world_size: int = 1, global_rank: int = 0) -> None:
        self.lightning_module, self.current_epoch = None, 0
        self.world_size, self.global_rank = world_size, global_rank


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(params=["embeddings", "images"])
def make(request, cache_dir):
    def build(**kwargs) -> PoolDataModule:
        if request.param == "embeddings":
            return EmbeddingDataModule(Digits(), PixelEncoder(native_size=8), cache_dir=cache_dir, **kwargs)
        return ImageDataModule(Digits(), **kwargs)

    return build


def test_both_modules_share_the_base():
    assert issubclass(EmbeddingDataModule, PoolDataModule) and issubclass(ImageDataModule, PoolDataModule)
    assert PoolDataModule(Digits()).prepare_embeddings() == 0.0


def test_pool_file_is_loaded_and_checked(make, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        make(pool_file=str(tmp_path / "nope.json")).setup("fit")
    LabelPool(7, 10).save(tmp_path / "small.json")
    with pytest.raises(DataError, match="has 7 items, the data set 1258"):
        make(pool_file=str(tmp_path / "small.json")).setup("fit")
    pool = LabelPool(1258, 10)
    pool.add_labels(torch.tensor([4, 9]), torch.tensor([1, 2]), round=0)
    pool.save(tmp_path / "pool.json")
    dm = make(pool_file=str(tmp_path / "pool.json"))
    dm.setup("fit")
    assert dm.pool.labeled_index().tolist() == [4, 9] and dm.state_dict()["pool"] == pool.state_dict()


def test_validation_split_without_a_labeled_item_is_one_clear_error(make):
    dm = make(val_fraction=0.5)
    dm.setup("fit")
    dm.pool = dm.new_pool()
    outside = (~dm.val_mask()).nonzero().flatten()[:3]
    dm.pool.add_labels(outside, torch.zeros(3, dtype=torch.long), round=0)
    with pytest.raises(ConfigError, match="none of the 3 labeled items falls into the validation split"):
        dm.val_dataloader()


def test_test_split_under_ddp_evaluates_every_item_once(make):
    dm = make()
    dm.setup("test")
    shards = []
    for rank in range(4):
        dm.trainer = Holder(world_size=4, global_rank=rank)
        shards.append(torch.cat([b["index"] for b in dm.test_dataloader()]))
    assert sorted(torch.cat(shards).tolist()) == list(range(len(dm.test_split)))


def test_setup_sees_answers_journaled_before_a_crash(tmp_path):
    """`fit` reads the pool file: answers a crashed `label` journaled but did not write back are replayed."""
    import shutil

    import torch

    from lbench.data.digits import Digits
    from lbench.data.embeddings import EmbeddingDataModule
    from lbench.encoders import PixelEncoder
    from lbench.label import import_answers
    from lbench.label.formats import Parsed
    from lbench.pool import LabelPool

    pool_file = tmp_path / "pool.json"
    LabelPool(1258, 10).save(pool_file)
    before = pool_file.read_bytes()
    import_answers(pool_file, Parsed.from_answers([3, 5], [1, 2], source="test"), annotator="test")
    shutil.copy(pool_file, tmp_path / "after.json")
    pool_file.write_bytes(before)  # as if the process died after the journal line, before pool.json
    dm = EmbeddingDataModule(Digits(), PixelEncoder(native_size=8), cache_dir=str(tmp_path / "cache"),
                             pool_file=str(pool_file))  # fmt: skip
    dm.setup("fit")
    assert dm.pool.labeled_index().tolist() == [3, 5] and dm.pool.labels[[3, 5]].tolist() == [1, 2]
    assert pool_file.read_bytes() == before  # setup reads, never writes
    assert torch.equal(dm.pool.labels, LabelPool.load(tmp_path / "after.json").labels)
