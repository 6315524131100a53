import numpy as np
import pytest
import torch

import lbench.cache.embedding_cache as embedding_cache
from lbench.cache import EmbeddingCache
from lbench.views import ViewRecipe

from .conftest import CountingEncoder, pixels, store_digests


def cache(root, **kw):
    kw = {"batch_size": 16, "checkpoint_every": 2, "progress": False, **kw}
    return EmbeddingCache(root, **kw)


def test_views_are_built_stored_and_read(tmp_path, digits):
    _, test = digits
    enc = CountingEncoder()
    store = cache(tmp_path).ensure(test, enc, ViewRecipe(weak_views=1, strong_views=1))
    assert store.num_views == 3 and store.names == ["plain", "weak0", "strong0"]
    assert store.view_ids("plain") == [0] and store.view_ids("weak") == [1] and store.view_ids("strong") == [2]
    assert enc.rows == 3 * len(test)
    views = [store.view(v) for v in range(3)]
    for view in views:
        assert isinstance(view, np.memmap) and view.dtype == np.float16 and view.shape == (len(test), 64)
        assert not view.flags.writeable
        with pytest.raises(ValueError):
            view[0, 0] = 1
    assert np.allclose(views[0], pixels(test).numpy(), atol=1e-3)  # plain = the encoder's own preprocess only
    assert not np.array_equal(views[0], views[1]) and not np.array_equal(views[1], views[2])
    # statistics exactly as EmbeddingDataModule computed them from the fp16 plain view
    x = torch.from_numpy(np.array(views[0])).float()
    assert store.mean.dtype == torch.float32 and torch.equal(store.mean, x.mean(0))
    assert torch.equal(store.std, x.std(0).clamp_min(1e-6))
    assert torch.equal(cache(tmp_path).load_or_build(test, enc), torch.from_numpy(np.array(views[0])))


def test_adding_views_reuses_the_built_ones(tmp_path, digits):
    _, test = digits
    first = cache(tmp_path).ensure(test, CountingEncoder(), ViewRecipe(weak_views=1, strong_views=1))
    before = store_digests(first)
    mtimes = [first.path(v).stat().st_mtime_ns for v in range(3)]
    enc = CountingEncoder()
    more = cache(tmp_path).ensure(test, enc, ViewRecipe(weak_views=2, strong_views=1))
    assert enc.rows == len(test)  # only weak1 was computed
    assert more.names == ["plain", "weak0", "weak1", "strong0"]
    assert store_digests(more)[:2] + store_digests(more)[3:] == before
    assert [more.path(v).stat().st_mtime_ns for v in (0, 1, 3)] == mtimes
    enc = CountingEncoder()
    cache(tmp_path).ensure(test, enc, ViewRecipe(weak_views=2))
    assert enc.calls == 0


def test_reading_one_view_reads_no_other(tmp_path, digits):
    _, test = digits
    store = cache(tmp_path).ensure(test, CountingEncoder(), ViewRecipe(weak_views=1, strong_views=1))
    expected = np.array(store.view(1))
    store.path(0).unlink()
    store.path(2).unlink()
    again = cache(tmp_path).ensure(test, CountingEncoder(), ViewRecipe(weak_views=1, strong_views=1))
    assert np.array_equal(again.view(1), expected)


def test_values_do_not_depend_on_batch_size_workers_or_chunks(tmp_path, digits):
    _, test = digits
    recipe = ViewRecipe(weak_views=1, strong_views=1, seed=3)
    a = cache(tmp_path / "a").ensure(test, CountingEncoder(), recipe)
    b = cache(tmp_path / "b", batch_size=7, checkpoint_every=3, num_workers=2).ensure(test, CountingEncoder(), recipe)
    assert store_digests(a) == store_digests(b)
    assert a.path(1).name == b.path(1).name  # the same view gets the same file name
    c = cache(tmp_path / "c").ensure(test, CountingEncoder(), ViewRecipe(weak_views=1, strong_views=1, seed=4))
    assert store_digests(c)[0] == store_digests(a)[0] and store_digests(c)[1] != store_digests(a)[1]


def test_changed_recipe_or_encoder_is_never_reused(tmp_path, digits):
    _, test = digits
    c = cache(tmp_path)
    a = c.ensure(test, CountingEncoder(), ViewRecipe(weak_views=1, seed=0))
    enc = CountingEncoder()
    b = c.ensure(test, enc, ViewRecipe(weak_views=1, seed=1))
    assert b.folder == a.folder and b.path(1) != a.path(1)  # new view file, plain view reused
    assert enc.rows == len(test)
    enc = CountingEncoder(image_size=4)
    d = c.ensure(test, enc, ViewRecipe(weak_views=1, seed=0))
    assert d.folder != a.folder and enc.rows == 2 * len(test) and d.dim == 16


def test_chunked_statistics_for_large_views(tmp_path, digits, monkeypatch):
    pool, _ = digits
    exact = cache(tmp_path / "a").ensure(pool, CountingEncoder())
    monkeypatch.setattr(embedding_cache, "EXACT_STATS_LIMIT", 0)
    chunked = cache(tmp_path / "b").ensure(pool, CountingEncoder())
    assert torch.allclose(chunked.mean, exact.mean, atol=1e-6) and torch.allclose(chunked.std, exact.std, atol=1e-5)


def test_store_index_errors(tmp_path, digits):
    _, test = digits
    store = cache(tmp_path).ensure(test, CountingEncoder())
    with pytest.raises(IndexError, match="1 views"):
        store.view(1)
    assert store.nbytes() == store.path(0).stat().st_size
