"""BADGE: factorized distances, k-means++ (D² sampling) and the strategy contract."""

import os

import numpy as np
import pytest
import torch
from scipy import stats

from lbench.errors import ConfigError
from lbench.strategies import badge as badge_module
from lbench.strategies._kernels import d2_sample
from lbench.strategies.badge import Badge, badge_kmeanspp, badge_sq_dist_to, gradient_factors
from lbench.strategies.base import PoolView


def _data(n, k, d, seed=0, device="cpu", dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(2.0 * torch.randn(n, k, generator=g, dtype=torch.float64), dim=1)
    emb = torch.randn(n, d, generator=g, dtype=torch.float64)
    return probs.to(device=device, dtype=dtype), emb.to(device=device, dtype=dtype)


def _view(n=40, k=4, d=6, seed=0, device="cpu"):
    probs, emb = _data(n, k, d, seed, device)
    g = torch.Generator().manual_seed(seed + 1)
    index = (torch.randperm(n, generator=g) * 3 + 11).to(device)  # not arange
    return PoolView(index=index, probs=probs, embeddings=emb)


def _explicit_grad(probs, emb):
    """g_i = (e_ŷ - p_i) ⊗ h_i, built explicitly (small data only)."""
    q = -probs.double()
    q[torch.arange(q.shape[0]), probs.argmax(dim=1)] += 1.0
    return (q[:, :, None] * emb.double()[:, None, :]).reshape(q.shape[0], -1)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("chunk_size", [None, 3])
@pytest.mark.parametrize("storage_dtype", [torch.float32, torch.float64])
def test_factorized_distance_matches_explicit(chunk_size, storage_dtype):
    probs, emb = _data(30, 5, 7, seed=3)
    g = _explicit_grad(probs, emb)
    for center in (0, 17, 29):
        explicit = (g - g[center]).square().sum(dim=1)
        ours = badge_sq_dist_to(probs, emb, center, chunk_size=chunk_size, storage_dtype=storage_dtype).double()
        scale = explicit.max().item()
        torch.testing.assert_close(ours, explicit, rtol=1e-5, atol=1e-5 * scale)
    _, _, sq_norm = gradient_factors(probs, emb, chunk_size, storage_dtype)
    torch.testing.assert_close(sq_norm.double(), g.square().sum(dim=1), rtol=1e-5, atol=1e-6)


def test_low_precision_storage_is_close():
    probs, emb = _data(50, 4, 8, seed=4)
    exact = badge_sq_dist_to(probs, emb, 5, storage_dtype=torch.float64)
    for dtype in (torch.float16, torch.bfloat16):
        approx = badge_sq_dist_to(probs, emb, 5, storage_dtype=dtype).double()
        assert (approx - exact).abs().max() < 0.05 * exact.max()


def test_first_pick_is_max_gradient_norm():
    probs, emb = _data(50, 5, 8, seed=5)
    norms = _explicit_grad(probs, emb).square().sum(dim=1)
    for seed in range(3):
        assert badge_kmeanspp(probs, emb, 4, _gen(seed))[0].item() == int(norms.argmax())


def test_second_pick_follows_d2_sampling():
    probs, emb = _data(8, 3, 4, seed=7)
    g = _explicit_grad(probs, emb)
    first = int(g.square().sum(dim=1).argmax())
    weights = (g - g[first]).square().sum(dim=1).numpy()
    weights[first] = 0.0
    draws = 2000
    counts = np.zeros(8)
    for seed in range(draws):
        picks = badge_kmeanspp(probs, emb, 2, _gen(seed))
        assert picks[0].item() == first
        counts[picks[1].item()] += 1
    assert counts[first] == 0
    keep = weights > 0
    expected = weights[keep] / weights[keep].sum() * draws
    assert expected.min() >= 5, "test data gives a cell too small for chi-square"
    assert stats.chisquare(counts[keep], expected).pvalue > 0.001


def test_contract_distinct_unlabeled_exact_budget():
    view = _view(n=40)
    picked = Badge().select(view, 12, _gen(0))
    assert picked.shape == (12,) and picked.dtype == torch.long
    assert len(set(picked.tolist())) == 12
    assert set(picked.tolist()) <= set(view.index.tolist())


def test_deterministic_given_seed():
    view = _view(n=60)
    a = Badge().select(view, 10, _gen(123))
    b = Badge().select(view, 10, _gen(123))
    c = Badge(chunk_size=7).select(view, 10, _gen(123))
    assert torch.equal(a, b) and torch.equal(a, c)
    others = {tuple(Badge().select(view, 10, _gen(s)).tolist()) for s in range(5)}
    assert len(others) > 1  # the seed matters


def test_budget_equals_pool():
    view = _view(n=25)
    picked = Badge().select(view, 25, _gen(0))
    assert sorted(picked.tolist()) == sorted(view.index.tolist())


def test_all_predictions_one_class():
    probs, emb = _data(30, 4, 5, seed=9)
    probs = torch.full_like(probs, 0.1)
    probs[:, 2] = 0.7 + 0.01 * torch.rand(30, generator=_gen(0))
    view = PoolView(index=torch.arange(100, 130), probs=probs, embeddings=emb)
    picked = Badge().select(view, 10, _gen(0))
    assert len(set(picked.tolist())) == 10


def test_single_class_model_falls_back_to_uniform():
    """K = 1: every gradient is 0, so every distance is 0."""
    _, emb = _data(20, 1, 5, seed=10)
    view = PoolView(index=torch.arange(200, 220), probs=torch.ones(20, 1), embeddings=emb)
    with pytest.warns(UserWarning, match="distance 0"):
        picked = Badge().select(view, 7, _gen(0))
    assert len(set(picked.tolist())) == 7 and set(picked.tolist()) <= set(range(200, 220))


def test_all_zero_distances_warns_and_draws_uniformly():
    probs, emb = _data(1, 3, 4, seed=11)
    probs, emb = probs.repeat(6, 1), emb.repeat(6, 1)  # six copies of one point
    counts = np.zeros(6)
    for seed in range(600):
        with pytest.warns(UserWarning, match="uniformly at random"):
            picks = badge_kmeanspp(probs, emb, 2, _gen(seed))
        assert picks[0].item() == 0  # argmax tie: lowest position
        counts[picks[1].item()] += 1
    assert counts[0] == 0
    assert stats.chisquare(counts[1:]).pvalue > 0.001


def test_duplicates_after_some_picks():
    probs, emb = _data(3, 3, 4, seed=12)
    probs, emb = probs.repeat(4, 1), emb.repeat(4, 1)  # 3 distinct points, 4 copies each
    with pytest.warns(UserWarning, match="distance 0"):
        picks = badge_kmeanspp(probs, emb, 6, _gen(0))
    assert len(set(picks.tolist())) == 6
    assert len({p % 3 for p in picks[:3].tolist()}) == 3  # the three distinct points come first


def test_invalid_arguments():
    probs, emb = _data(5, 2, 3)
    with pytest.raises(ValueError):
        badge_kmeanspp(probs, emb, 6)
    with pytest.raises(ValueError):
        badge_kmeanspp(probs, emb.clone().fill_(float("nan")), 2)
    with pytest.raises(ConfigError):
        Badge(storage_dtype="int8")
    with pytest.raises(ConfigError):
        Badge(chunk_size=0)
    view = PoolView(index=torch.arange(5), probs=probs)
    with pytest.raises(ConfigError):
        Badge().select(view, 2)


def _reference_with_pending(probs, emb, pending_probs, pending_emb, budget, generator):
    """k-means++ continued from the pending items' explicit gradient embeddings (float64, Python loop)."""
    g, gp = _explicit_grad(probs, emb), _explicit_grad(pending_probs, pending_emb)
    min_sq = (g[:, None, :] - gp[None, :, :]).square().sum(-1).min(dim=1).values
    picks = []
    for _ in range(budget):
        idx = d2_sample(min_sq, generator)
        picks.append(idx)
        min_sq = torch.minimum(min_sq, (g - g[idx]).square().sum(dim=1))
        min_sq[idx] = 0.0
    return picks


@pytest.mark.parametrize("blocks", [None, (5, 2)])
def test_pending_items_are_centers_already_chosen(monkeypatch, blocks):
    """The seeding continues from the pending gradient embeddings: every pick, the first one too, is a D² draw."""
    if blocks is not None:  # many small candidate x pending blocks, a partial last one in each direction
        monkeypatch.setattr(badge_module, "_ROW_BLOCK", blocks[0])
        monkeypatch.setattr(badge_module, "_CENTER_BLOCK", blocks[1])
    probs, emb = _data(40, 4, 6, seed=13, dtype=torch.float64)
    pprobs, pemb = _data(7, 4, 6, seed=14, dtype=torch.float64)
    for seed in range(4):
        for chunk_size in (None, 9):
            ours = badge_kmeanspp(probs, emb, 6, _gen(seed), chunk_size=chunk_size, storage_dtype=torch.float64,
                                  pending_probs=pprobs, pending_embeddings=pemb)  # fmt: skip
            assert ours.tolist() == _reference_with_pending(probs, emb, pprobs, pemb, 6, _gen(seed))


def test_pending_duplicate_of_a_candidate_is_never_drawn():
    probs, emb = _data(12, 3, 4, seed=15)
    picks = {badge_kmeanspp(probs, emb, 1, _gen(s), pending_probs=probs[:2], pending_embeddings=emb[:2]).item()
             for s in range(200)}  # fmt: skip
    assert not picks & {0, 1}  # at distance 0 from a pending center
    assert len(picks) > 3  # the first pick is drawn, not the largest gradient norm


def test_pending_with_all_distances_zero_draws_uniformly():
    _, emb = _data(10, 1, 5, seed=16)
    with pytest.warns(UserWarning, match="distance 0"):
        picks = badge_kmeanspp(torch.ones(10, 1), emb, 4, _gen(0), pending_probs=torch.ones(2, 1),
                               pending_embeddings=emb[:2])  # fmt: skip
    assert len(set(picks.tolist())) == 4


def test_pending_probs_need_embeddings():
    probs, emb = _data(5, 2, 3)
    with pytest.raises(ValueError, match="pending_embeddings"):
        badge_kmeanspp(probs, emb, 2, pending_probs=probs[:1])
    with pytest.raises(ValueError, match="pending probs and embeddings must be finite"):
        badge_kmeanspp(probs, emb, 2, pending_probs=probs[:1], pending_embeddings=emb[:1].clone().fill_(torch.inf))


def _read_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def test_no_n_k_d_allocation():
    """n*K*d float32 would be 4 GB; the extra peak resident memory must stay far below."""
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux /proc to measure peak RSS")
    n, k, d = 20_000, 100, 512
    g = _gen(0)
    probs = torch.softmax(torch.randn(n, k, generator=g), dim=1)
    emb = torch.randn(n, d, generator=g)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak (VmHWM) to the current RSS
    except OSError:
        pytest.skip("cannot reset the peak RSS")
    before = _read_kib("VmRSS")
    picks = badge_kmeanspp(probs, emb, 5, g, chunk_size=4096)
    extra_mb = (_read_kib("VmHWM") - before) / 1024
    assert len(set(picks.tolist())) == 5
    assert extra_mb < 500, f"peak grew by {extra_mb:.0f} MB (n*K*d*4 bytes = {n * k * d * 4 / 1e9:.1f} GB)"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("storage", ["float32", "bfloat16"])
def test_cuda_contract_and_agreement(storage):
    view_cpu = _view(n=200, k=5, d=16)
    view = PoolView(index=view_cpu.index.cuda(), probs=view_cpu.probs.cuda(), embeddings=view_cpu.embeddings.cuda())
    picked = Badge(storage_dtype=storage).select(view, 30, _gen(3))
    assert picked.device.type == "cuda"
    assert len(set(picked.tolist())) == 30 and set(picked.tolist()) <= set(view_cpu.index.tolist())
    assert torch.equal(picked, Badge(storage_dtype=storage).select(view, 30, _gen(3)))
    cpu = Badge().select(view_cpu, 30, _gen(3))
    assert picked[0].item() == cpu[0].item()  # max-norm point
    ref = badge_sq_dist_to(view_cpu.probs, view_cpu.embeddings, 4)
    gpu = badge_sq_dist_to(view.probs, view.embeddings, 4).cpu()
    torch.testing.assert_close(gpu, ref, rtol=1e-4, atol=1e-4 * ref.max().item())
