"""The embedding cache: fp16 embeddings of a split's views under an encoder, one file per view.

Use::

    cache = EmbeddingCache(root, batch_size=64, device="auto")
    store = cache.ensure(split, encoder, ViewRecipe(weak_views=2, strong_views=2), trainer=None)
    store.view(0)              # np.memmap, fp16 [N, D], read-only: the plain view
    store.num_views            # 5: plain, weak0, weak1, strong0, strong1
    store.view_ids("weak")     # [1, 2]; view_ids("strong") -> [3, 4]
    store.mean, store.std      # float32 [D] tensors: statistics of view 0 (std clamped at 1e-6)
    cache.load_or_build(split, encoder)   # fp16 torch tensor [N, D] of view 0 (a copy)

:meth:`EmbeddingCache.ensure` builds only what is missing and returns a :class:`Store`;
:meth:`Store.view` maps one view's file read-only on first use (verifying its checksums), so
reading one view never reads the others. Pass ``trainer`` (any Lightning Trainer: devices, DDP,
precision, progress bar) to build with it; under DDP every rank calls ``ensure``.

Layout: ``<root>/<split name>-<key>/`` holds ``meta.json`` (:mod:`lbench.cache.meta`) and one
``.npy`` per view: ``plain.npy`` and ``<view name>-<spec hash>.npy`` (e.g. ``weak0-1a2b3c4d.npy``).
``key`` hashes the fingerprint (split name, size, fingerprint and content hash; encoder
fingerprint; precision; cache format); each augmented view's file name hashes its own spec
(transform, seed, name; :meth:`lbench.views.ViewRecipe.view_spec`). So a changed data set,
encoder or precision gets a new folder, a changed recipe new view files, never silent reuse,
and adding views later reuses the ones already built.

Building (:mod:`lbench.cache.build`) is a ``trainer.predict`` over the missing chunks with a
``BasePredictionWriter`` that writes rows by global index. A chunk is marked done in
``meta.json`` only once all its rows are written, checked finite and flushed, so a killed build
resumes at the first missing chunk and ends byte-identical to an uninterrupted one, whatever
the number of processes. Damage is a one-line :class:`~lbench.errors.CacheError` naming the
file and saying what to do: a cut, mis-typed or mis-shaped file (checked against its header
before mapping), ``meta.json`` missing or from another cache, values changed after the build
(checksums), a read-only folder with work left, a failed write.
"""

from lbench.cache.embedding_cache import EmbeddingCache, cache_fingerprint, view_stem
from lbench.cache.store import Store

__all__ = ["EmbeddingCache", "Store", "cache_fingerprint", "view_stem"]
