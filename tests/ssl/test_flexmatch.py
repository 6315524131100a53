import io

import pytest
import torch

from lbench.errors import ConfigError
from lbench.ssl import FlexMatch
from tests.conftest import requires_gpu


def with_table(values, num_classes=3, **kwargs):
    fm = FlexMatch(num_classes=num_classes, pool_size=len(values), **kwargs)
    fm.selected_label = torch.tensor(values)
    return fm


# sigma = [3, 2, 1], 4 unused
TABLE = [0, 0, 0, 1, 1, 2, -1, -1, -1, -1]


def test_thresholds_by_hand_with_warmup():
    fm = with_table(TABLE, p_cutoff=0.9)
    # denominator max(max sigma = 3, unused = 4) = 4
    assert fm.class_status().tolist() == pytest.approx([0.75, 0.5, 0.25])
    # M(x) = x / (2 - x): 0.75/1.25 = 0.6, 0.5/1.5 = 1/3, 0.25/1.75 = 1/7
    assert fm.thresholds().tolist() == pytest.approx([0.9 * 0.6, 0.9 / 3, 0.9 / 7])


def test_thresholds_by_hand_without_warmup():
    fm = with_table(TABLE, p_cutoff=0.9, warmup=False)
    # denominator max sigma = 3
    assert fm.class_status().tolist() == pytest.approx([1.0, 2 / 3, 1 / 3])
    # M(1) = 1, M(2/3) = (2/3)/(4/3) = 0.5, M(1/3) = (1/3)/(5/3) = 0.2
    assert fm.thresholds().tolist() == pytest.approx([0.9, 0.45, 0.18])


def test_warmup_keeps_beta_small_while_most_of_the_table_is_unset():
    values = torch.full((1000,), -1)
    values[:10], values[10:15] = 0, 1
    warm = with_table(values.tolist())
    cold = with_table(values.tolist(), warmup=False)
    assert warm.class_status().tolist() == pytest.approx([10 / 985, 5 / 985, 0.0])
    assert cold.class_status().tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert warm.thresholds().max() < 0.01 < cold.thresholds()[1]
    # once the largest class outnumbers the unused items, warm-up and no warm-up agree
    values[:600], values[600:900] = 0, 1
    warm, cold = with_table(values.tolist()), with_table(values.tolist(), warmup=False)
    assert torch.allclose(warm.class_status(), cold.class_status())
    assert cold.class_status().tolist() == pytest.approx([1.0, 0.5, 0.0])


def test_empty_table_gives_zero_thresholds_as_usb():
    for warmup in (True, False):
        fm = FlexMatch(num_classes=4, pool_size=7, warmup=warmup)
        assert fm.selected_label.tolist() == [-1] * 7
        assert fm.class_status().tolist() == [0.0] * 4
        assert fm.thresholds().tolist() == [0.0] * 4


def test_fixmatch_thresholds_are_constant():
    for values in ([-1] * 10, TABLE, [2] * 10):
        fm = with_table(values, p_cutoff=0.8, flexible=False)
        assert fm.thresholds().tolist() == pytest.approx([0.8] * 3)
    probs = torch.tensor([[0.85, 0.1, 0.05], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    mask, pseudo, _ = with_table(TABLE, p_cutoff=0.8, flexible=False).pseudo_labels(probs.log())
    assert mask.tolist() == [True, False, True] and pseudo.tolist() == [0, 0, 2]


def hand_made():
    # thresholds (no warm-up, TABLE, p_cutoff 0.9): [0.9, 0.45, 0.18]
    probs_w = torch.tensor(
        [
            [0.95, 0.03, 0.02],  # class 0, 0.95 >= 0.9: used, and confident (>= p_cutoff): written
            [0.50, 0.30, 0.20],  # class 0, 0.50 < 0.9: not used
            [0.20, 0.50, 0.30],  # class 1, 0.50 >= 0.45: used, not written
            [0.30, 0.40, 0.30],  # class 1, 0.40 < 0.45: not used
            [0.10, 0.44, 0.46],  # class 2, 0.46 >= 0.18: used
        ]
    )
    g = torch.Generator().manual_seed(0)
    return probs_w.log(), torch.randn(5, 3, generator=g), torch.randn(4, 3, generator=g)


def test_mask_and_loss_on_hand_made_logits():
    logits_w, logits_s, logits_lb = hand_made()
    logits_w.requires_grad_(True)
    logits_s.requires_grad_(True)
    y_lb = torch.tensor([0, 1, 2, 1])
    index = torch.tensor([6, 7, 8, 9, 0])
    fm = with_table(TABLE, p_cutoff=0.9, warmup=False, lambda_u=2.0)
    out = fm.step(logits_lb, y_lb, logits_w, logits_s, index)
    assert out.mask.tolist() == [True, False, True, False, True]
    assert out.pseudo_label.tolist() == [0, 0, 1, 1, 2]
    logp_s = logits_s.detach().log_softmax(-1)
    ce = -logp_s[torch.arange(5), torch.tensor([0, 0, 1, 1, 2])]
    unsup = (ce[0] + ce[2] + ce[4]) / 5  # mean over the whole unlabeled batch, not over the mask
    sup = -logits_lb.log_softmax(-1)[torch.arange(4), y_lb].mean()
    assert float(out.unsup_loss.detach()) == pytest.approx(float(unsup), rel=1e-5)
    assert float(out.sup_loss.detach()) == pytest.approx(float(sup), rel=1e-5)
    assert float(out.loss.detach()) == pytest.approx(float(sup + 2.0 * unsup), rel=1e-5)
    out.loss.backward()
    assert logits_w.grad is None  # pseudo-labels come from the detached weak view
    assert logits_s.grad[1].abs().sum() == 0 and logits_s.grad[0].abs().sum() > 0
    # only item 6 (confidence 0.95 >= 0.9) is written; item 0 keeps its old label 0
    expected = list(TABLE)
    expected[6] = 0
    assert fm.selected_label.tolist() == expected


def test_the_mask_uses_the_table_before_the_step():
    fm = FlexMatch(num_classes=3, pool_size=4, p_cutoff=0.9)  # empty table: thresholds 0
    logits_w = torch.tensor([[0.96, 0.02, 0.02], [0.2, 0.3, 0.5]]).log()
    out = fm.step(torch.zeros(1, 3), torch.tensor([0]), logits_w, torch.zeros(2, 3), torch.tensor([0, 1]))
    assert out.mask.tolist() == [True, True]
    assert fm.selected_label.tolist() == [0, -1, -1, -1]
    # beta_0 = 1 / max(1, 3) = 1/3 now, so threshold 0.9 * (1/3) / (5/3) = 0.18 for class 0
    assert fm.thresholds().tolist() == pytest.approx([0.18, 0.0, 0.0])
    out = fm.step(torch.zeros(1, 3), torch.tensor([0]), torch.tensor([[0.17, 0.8, 0.03]]).log(),
                  torch.zeros(1, 3), torch.tensor([2]))  # fmt: skip
    assert out.mask.tolist() == [True]  # class 1 threshold is still 0


def test_temperature_changes_confidence_not_pseudo_labels():
    logits = torch.tensor([[0.5, 0.3, 0.2]]).log()
    fm = with_table([-1] * 3, p_cutoff=0.6, flexible=False)
    assert fm.pseudo_labels(logits)[0].tolist() == [False]
    sharp = with_table([-1] * 3, p_cutoff=0.6, flexible=False, temperature=0.5)
    mask, pseudo, conf = sharp.pseudo_labels(logits)
    assert float(conf[0]) == pytest.approx(0.25 / 0.38) and mask.tolist() == [True] and pseudo.tolist() == [0]


class TwoRanks:
    """A fake all_gather for rank 0 of 2: the other rank contributed ``other`` ([2, n] index/label rows)."""

    def __init__(self, index, label):
        self.other = torch.stack([index, label])
        self.calls = 0

    def __call__(self, t):
        self.calls += 1
        if t.shape == (1,):
            return torch.stack([t, torch.tensor([self.other.shape[1]])])
        pad = t.shape[1] - self.other.shape[1]
        other = torch.cat([self.other, self.other.new_full((2, pad), -1)], dim=1)
        return torch.stack([t, other])


def test_update_merges_every_rank_with_uneven_batches():
    fm = FlexMatch(num_classes=3, pool_size=8)
    gather = TwoRanks(torch.tensor([5, 6, 7]), torch.tensor([2, -1, 1]))  # rank 1: 3 items, item 6 not confident
    fm.update(torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([True, False]), all_gather=gather)
    assert gather.calls == 2
    assert fm.selected_label.tolist() == [1, -1, -1, -1, -1, 2, -1, 1]


def test_update_rejects_indices_outside_the_pool():
    fm = FlexMatch(num_classes=3, pool_size=4)
    with pytest.raises(ConfigError, match="outside"):
        fm.update(torch.tensor([4]), torch.tensor([0]), torch.tensor([True]))


def test_state_dict_round_trip_with_weights_only_load():
    fm = with_table(TABLE, p_cutoff=0.9)
    buf = io.BytesIO()
    torch.save(fm.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    fresh = FlexMatch(p_cutoff=0.9)
    fresh.load_state_dict(state)
    assert fresh.selected_label.tolist() == TABLE
    assert fresh.num_classes == 3 and fresh.pool_size == 10
    assert torch.equal(fresh.thresholds(), fm.thresholds())
    fm.selected_label[0] = 2
    assert fresh.selected_label[0] == 0  # a copy, not a view
    with pytest.raises(ConfigError):
        FlexMatch(num_classes=3, pool_size=11).load_state_dict(state)
    with pytest.raises(ConfigError):
        FlexMatch(num_classes=4, pool_size=10).load_state_dict(state)
    bad = {**state, "selected_label": torch.tensor([3] * 10)}
    with pytest.raises(ConfigError):
        FlexMatch().load_state_dict(bad)


def test_reset_configure_and_config_round_trip():
    fm = with_table(TABLE)
    fm.reset()
    assert fm.selected_label.tolist() == [-1] * 10
    fm = FlexMatch(p_cutoff=0.8, flexible=False)
    assert fm.selected_label is None
    fm.configure(num_classes=3, pool_size=5)
    assert fm.selected_label.tolist() == [-1] * 5
    fm.configure(num_classes=3, pool_size=None)  # a DataModule without pool_size keeps it
    with pytest.raises(ConfigError):
        fm.configure(num_classes=4)
    again = FlexMatch.from_config(fm.config())
    assert again.config() == fm.config() and again.p_cutoff == 0.8 and not again.flexible
    with pytest.raises(ConfigError):
        FlexMatch.from_config({"class_path": "os.system", "init_args": {}})


def test_bad_arguments():
    for kwargs in ({"p_cutoff": 0.0}, {"p_cutoff": 1.5}, {"num_classes": 1}, {"pool_size": 0}, {"temperature": 0},
                   {"lambda_u": -1}, {"uratio": 0}):  # fmt: skip
        with pytest.raises(ConfigError):
            FlexMatch(**kwargs)
    with pytest.raises(ConfigError, match="pool_size"):
        FlexMatch(num_classes=3).thresholds()


def test_class_status_is_vectorised_on_a_large_pool():
    values = torch.randint(-1, 10, (200_000,), generator=torch.Generator().manual_seed(0))
    fm = FlexMatch(num_classes=10, pool_size=len(values))
    fm.selected_label = values
    counts = torch.stack([(values == c).sum() for c in range(-1, 10)])
    expected = counts[1:].float() / torch.maximum(counts[1:].max(), counts[0]).float()
    assert torch.allclose(fm.class_status(), expected)


@pytest.mark.gpu
@requires_gpu
def test_cuda_table_follows_the_logits_and_saves_on_cpu():
    fm = with_table(TABLE, p_cutoff=0.9, warmup=False)
    logits_w, logits_s, logits_lb = (t.cuda() for t in hand_made())
    out = fm.step(logits_lb, torch.tensor([0, 1, 2, 1], device="cuda"), logits_w, logits_s,
                  torch.tensor([6, 7, 8, 9, 0], device="cuda"))  # fmt: skip
    assert out.mask.tolist() == [True, False, True, False, True]
    assert fm.selected_label.is_cuda and fm.selected_label[6].item() == 0
    state = fm.state_dict()
    assert state["selected_label"].device.type == "cpu"
    fresh = FlexMatch()
    fresh.load_state_dict(state)
    assert torch.equal(fresh.thresholds(torch.device("cuda")).cpu(), fm.thresholds().cpu())
