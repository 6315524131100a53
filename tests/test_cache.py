import numpy as np
import pytest
import torch

from lbench.cache import EmbeddingCache
from lbench.console import Interrupted
from lbench.data.base import ImageSplit
from lbench.encoders import PixelEncoder
from lbench.errors import CacheError


class CountingEncoder(PixelEncoder):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return super().forward(x)


def split(n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 255, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    return ImageSplit("toy-train", images, torch.randint(0, 3, (n,), generator=g), fingerprint={"toy": seed})


def test_build_then_reuse(tmp_path):
    cache = EmbeddingCache(tmp_path, batch_size=16, progress=False)
    enc = CountingEncoder(native_size=8)
    s = split()
    z = cache.load_or_build(s, enc)
    assert z.dtype == torch.float16 and z.shape == (50, 64)
    assert torch.allclose(z.float(), s.images.flatten(1).float() / 255, atol=1e-3)
    calls = enc.calls
    assert calls == 4
    z2 = cache.load_or_build(s, enc)
    assert enc.calls == calls  # reused, no forward
    assert torch.equal(z, z2)
    assert cache.is_complete(s, enc)


def test_changed_fingerprint_rebuilds(tmp_path):
    cache = EmbeddingCache(tmp_path, batch_size=16, progress=False)
    s = split()
    cache.load_or_build(s, PixelEncoder(native_size=8))
    enc = CountingEncoder(image_size=4)  # other transform
    z = cache.load_or_build(s, enc)
    assert enc.calls > 0 and z.shape == (50, 16)
    other = split(seed=1)  # other content
    enc2 = CountingEncoder(native_size=8)
    cache.load_or_build(other, enc2)
    assert enc2.calls > 0
    assert len(list(tmp_path.glob("toy-train-*"))) == 3


def test_interrupted_build_resumes(tmp_path):
    cache = EmbeddingCache(tmp_path, batch_size=10, checkpoint_every=1, progress=False)
    s = split()

    class Crash(CountingEncoder):
        def forward(self, x):
            if self.calls == 3:
                raise Interrupted  # what Ctrl-C raises in the command line
            return super().forward(x)

    with pytest.raises(Interrupted):
        cache.load_or_build(s, Crash(native_size=8))
    assert not cache.is_complete(s, PixelEncoder(native_size=8))
    enc = CountingEncoder(native_size=8)
    z = cache.load_or_build(s, enc)
    assert enc.calls == 2  # only the 20 missing items
    assert torch.allclose(z.float(), s.images.flatten(1).float() / 255, atol=1e-3)


def test_corrupt_cache_files_are_clear_errors(tmp_path):
    cache = EmbeddingCache(tmp_path, progress=False)
    s, enc = split(), PixelEncoder(native_size=8)
    cache.load_or_build(s, enc)
    folder = cache.folder(s, enc)
    (folder / "plain.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(CacheError, match="unreadable"):
        cache.load_or_build(s, enc)
    (folder / "meta.json").write_text("{oops")
    with pytest.raises(CacheError, match="delete"):
        cache.load_or_build(s, enc)


def test_wrong_shape_is_a_clear_error(tmp_path):
    cache = EmbeddingCache(tmp_path, progress=False)
    s, enc = split(), PixelEncoder(native_size=8)
    cache.load_or_build(s, enc)
    np.save(cache.folder(s, enc) / "plain.npy", np.zeros((5, 64), np.float16))
    with pytest.raises(CacheError, match=r"shape \(5, 64\), expected \(50, 64\)"):
        cache.load_or_build(s, enc)
