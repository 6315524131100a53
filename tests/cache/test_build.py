import torch

from lbench.cache import EmbeddingCache
from lbench.cache.build import EMPTY, BuildPlan, ChunkBatches, ChunkSampler
from lbench.cache.meta import Meta
from lbench.views import ViewRecipe

from .conftest import CountingEncoder


def plan_for(units, items=100, chunk=32, batch=10):
    meta = Meta.new(None, {"split": {"n": items}}, items, 4, chunk)
    recipe = ViewRecipe(weak_views=1)
    plan = BuildPlan(["plain", "weak0"], [recipe.transform(n) for n in recipe.names()], units, batch, recipe.names())
    return meta, plan


def test_batches_stay_inside_their_chunk():
    meta, plan = plan_for([(0, 0), (0, 3), (1, 1)])
    batches, per_unit = plan.batches(meta)
    assert batches[-1][0] == EMPTY
    rows = {(s, a, b) for s, a, b in batches[:-1]}
    assert (0, 0, 10) in rows and (0, 30, 32) in rows and (0, 96, 100) in rows and (1, 32, 42) in rows
    for (slot, chunk), ids in zip(plan.units, per_unit, strict=True):
        lo, hi = meta.rows(chunk)
        assert [batches[j][0] for j in ids] == [slot] * len(ids)
        assert batches[ids[0]][1] == lo and batches[ids[-1]][2] == hi


def test_sampler_shards_whole_chunks_without_duplicates():
    meta, plan = plan_for([(0, c) for c in range(4)] + [(1, 0)])
    batches, per_unit = plan.batches(meta)
    data = ChunkBatches(None, plan.transforms, batches)
    shards = [list(ChunkSampler(data, per_unit, 2, r)) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(len(batches) - 1))  # every batch once, no padding
    assert shards[0] == per_unit[0] + per_unit[2] + per_unit[4] and shards[1] == per_unit[1] + per_unit[3]


def test_a_rank_without_work_gets_the_empty_batch():
    meta, plan = plan_for([(1, 2)])
    batches, per_unit = plan.batches(meta)
    data = ChunkBatches(None, plan.transforms, batches)
    idle = list(ChunkSampler(data, per_unit, 2, 1))
    assert idle == [len(batches) - 1] and data[idle[0]]["slot"] == EMPTY
    assert len(data[idle[0]]["images"]) == 0


def test_progress_comes_from_lightning_as_lines(tmp_path, digits, capsys):
    _, test = digits
    EmbeddingCache(tmp_path, batch_size=64, progress=True).ensure(test, CountingEncoder())
    err = capsys.readouterr().err
    assert "predict: done in" in err  # lbench.console.LineProgressBar: stderr is not a terminal
    assert f"embedded {len(test)} images of digits-test (plain)" in err and "images/s" in err
    assert "\r" not in err


def test_images_of_different_sizes_are_embedded_one_by_one(tmp_path):
    class Sizes(torch.utils.data.Dataset):
        name, fingerprint, content_hash = "sizes", {"sizes": 1}, "0" * 16

        def __len__(self):
            return 5

        def __getitem__(self, i):
            return torch.full((1, 6 + i, 6 + i), i / 10), 0, i

    from lbench.encoders import PixelEncoder

    store = EmbeddingCache(tmp_path, progress=False).ensure(Sizes(), PixelEncoder(image_size=4))
    view = torch.from_numpy(store.view(0).copy()).float()
    assert view.shape == (5, 16) and torch.allclose(view[:, 0], torch.arange(5) / 10, atol=1e-3)
