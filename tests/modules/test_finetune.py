import copy
import math
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from lbench.encoders import OpenCLIPEncoder, TimmEncoder, clip_zero_shot_head
from lbench.encoders.base import seeded
from lbench.errors import ConfigError
from lbench.modules import FineTuneClassifier
from lbench.modules.finetune import warmup_cosine
from lbench.ssl import FlexMatch
from tests.encoders.test_encoders import tiny_clip_config  # noqa: F401 - a pytest fixture

NAMES = ("cat", "dog", "airplane")


class Images(L.LightningDataModule):
    """Random grey 20 px images; class c has intensities in [c / k, (c + 1) / k] (learnable)."""

    def __init__(self, n=32, num_classes=2, batch_size=16):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.y = torch.arange(n) % num_classes
        self.x = (torch.rand(n, 1, 20, 20, generator=g) + self.y.view(-1, 1, 1, 1)) / num_classes
        self.num_classes = num_classes
        self.dataset = SimpleNamespace(class_names=NAMES[:num_classes])
        self.batch_size = batch_size

    def _loader(self):
        rows = [{"x": self.x[i], "y": self.y[i], "index": torch.tensor(i)} for i in range(len(self.y))]
        return DataLoader(rows, batch_size=self.batch_size)

    def train_dataloader(self):
        return self._loader()

    def predict_dataloader(self):
        return self._loader()


class Record(L.Callback):
    """Learning rates before each step; loss and live weights after each (and at the start)."""

    def __init__(self):
        self.lrs, self.losses, self.states, self.modes = [], [], [], []

    def on_train_start(self, trainer, module):
        self.states.append(live_state(module))

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.lrs.append([g["lr"] for g in trainer.optimizers[0].param_groups])
        self.modes.append(module.training and module.encoder.training)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))
        self.states.append(live_state(module))


def live_state(module):
    return {f"{name}.{k}": v.detach().clone() for name in ("encoder", "head")
            for k, v in getattr(module, name).state_dict().items()}  # fmt: skip


def trainer(tmp_path, steps, callbacks=(), **kwargs):
    return L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                     log_every_n_steps=1, callbacks=list(callbacks), **kwargs)  # fmt: skip


def probs(outputs):
    return torch.cat([o["probs"] for o in outputs]).float()


def clip(config):
    return OpenCLIPEncoder("lbench-tiny-clip", pretrained=None, model_config=config)


def test_timm_fine_tuning_trains_the_backbone_with_warmup_then_cosine(tmp_path):
    encoder = TimmEncoder("test_vit", image_size=32)  # frozen as built: the module makes it trainable
    start = {k: v.clone() for k, v in encoder.state_dict().items()}
    model = FineTuneClassifier(encoder, backbone_lr=1e-3, head_lr=1e-2, warmup_fraction=0.25, weight_decay=0.01)
    assert encoder.trainable and "encoder" not in model.hparams
    rec = Record()
    with seeded(0):
        trainer(tmp_path, 12, [rec]).fit(model, datamodule=Images())
    assert model.hparams.num_classes == 2  # from the data module
    groups = model.trainer.optimizers[0].param_groups
    assert [g["name"] for g in groups] == ["backbone", "head"]
    assert [g["weight_decay"] for g in groups] == [0.01, 0.01]
    assert len(groups[0]["params"]) == len(list(encoder.parameters()))
    # 12 steps, 3 of warm-up: (s + 1) / 3, then 0.5 * (1 + cos(pi * (s - 3) / 9))
    expected = [1 / 3, 2 / 3, 1.0] + [0.5 * (1 + math.cos(math.pi * (s - 3) / 9)) for s in range(3, 12)]
    assert expected[3] == 1.0 and expected[6] == pytest.approx(0.75) and expected[9] == pytest.approx(0.25)
    assert [lr for lr, _ in rec.lrs] == pytest.approx([1e-3 * f for f in expected])
    assert [lr for _, lr in rec.lrs] == pytest.approx([1e-2 * f for f in expected])
    assert warmup_cosine(12, 3, 12) == 0.0 and warmup_cosine(0, 0, 5) == 1.0
    changed = [k for k, v in encoder.state_dict().items() if not torch.equal(v, start[k])]
    assert len(changed) == len(start)  # every backbone tensor moved: gradients reach the encoder
    assert sum(rec.losses[-3:]) < 0.7 * sum(rec.losses[:3])
    assert all(rec.modes)  # trained in train mode, though the encoder was built in eval mode


def test_open_clip_zero_shot_head_then_bf16_fine_tuning(tmp_path, tiny_clip_config):  # noqa: F811
    encoder = clip(tiny_clip_config)
    model = FineTuneClassifier(encoder, zero_shot_head=True)  # classes and names from the data module
    dm = Images(num_classes=3, batch_size=12)
    t = trainer(tmp_path, 3, precision="bf16-mixed")
    predicted = probs(t.predict(model, datamodule=dm))
    assert model.hparams.num_classes == 3 and model.hparams.class_names == list(NAMES)
    scale = encoder.clip_model.logit_scale.exp()
    with torch.no_grad():
        expected = scale * F.normalize(encoder.encode(dm.x), dim=-1) @ clip_zero_shot_head(encoder, NAMES).T
        model.eval()
        assert torch.allclose(model(dm.x), expected, atol=1e-4)
    assert torch.equal(model.head.bias, torch.zeros(3))
    assert torch.allclose(predicted, expected.softmax(-1), atol=0.02)  # bf16 autocast
    start = {k: v.clone() for k, v in encoder.visual.state_dict().items()}
    with seeded(0):
        t.fit(model, datamodule=dm)
    assert all(not torch.equal(v, start[k]) for k, v in encoder.visual.state_dict().items())
    assert torch.isfinite(torch.as_tensor(t.callback_metrics["train/loss"]))


def test_config_errors(tiny_clip_config):  # noqa: F811
    vit = TimmEncoder("test_vit", image_size=32)
    with pytest.raises(ConfigError, match="zero_shot_head needs an OpenCLIPEncoder.*TimmEncoder"):
        FineTuneClassifier(vit, num_classes=2, zero_shot_head=True, class_names=["a", "b"])
    model = FineTuneClassifier(clip(tiny_clip_config), num_classes=3, zero_shot_head=True)
    with pytest.raises(ConfigError, match="class names"):
        model.configure_model()  # no names and no data module
    with pytest.raises(ConfigError, match="2 class_names for num_classes=3"):
        FineTuneClassifier(clip(tiny_clip_config), num_classes=3, class_names=["a", "b"])
    with pytest.raises(ConfigError, match="needs num_classes"):
        FineTuneClassifier(vit).configure_model()
    for bad in ({"backbone_lr": 0}, {"head_lr": -1.0}, {"weight_decay": -0.1}, {"warmup_fraction": 1.0},
                {"ema_decay": 1.0}, {"ema_decay": 0.0}, {"num_classes": 1}):  # fmt: skip
        with pytest.raises(ConfigError) as e:
            FineTuneClassifier(vit, **bad)
        assert next(iter(bad)) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="needs an Encoder"):
        FineTuneClassifier(nn.Linear(2, 2))


def test_ema_is_used_for_evaluation_and_survives_checkpoints(tmp_path):
    def encoder(seed=0):
        return TimmEncoder("test_efficientnet", image_size=32, seed=seed)  # has batch-norm buffers

    model = FineTuneClassifier(encoder(), backbone_lr=1e-2, head_lr=1e-2, warmup_fraction=0.0, ema_decay=0.5)
    dm, rec = Images(), Record()
    t = trainer(tmp_path, 3, [rec])
    with seeded(0):
        t.fit(model, datamodule=dm)
    assert len(rec.states) == 4  # initial + after each of 3 steps
    params = {f"{n}.{k}" for n in ("encoder", "head") for k, _ in getattr(model, n).named_parameters()}
    hand = dict(rec.states[0])
    for state in rec.states[1:]:
        hand = {k: 0.5 * hand[k] + 0.5 * v if k in params else v for k, v in state.items()}
    ema = {f"{n}.{k}": v for n in ("encoder", "head") for k, v in model.ema[n].state_dict().items()}
    assert ema.keys() == hand.keys()
    for k in hand:
        assert torch.allclose(ema[k].float(), hand[k].float(), atol=1e-6), k
    assert not torch.allclose(model.ema["head"].weight, model.head.weight, atol=1e-4)  # EMA != live

    # eval mode (predict) uses the EMA weights, train mode the live ones
    ref_enc, ref_head = copy.deepcopy(model.encoder), nn.Linear(model.encoder.embed_dim, 2)
    ref_enc.load_state_dict({k.removeprefix("encoder."): v for k, v in hand.items() if k.startswith("encoder.")})
    ref_head.load_state_dict({k.removeprefix("head."): v for k, v in hand.items() if k.startswith("head.")})
    ref_enc.eval()
    out = t.predict(model, datamodule=dm)
    emb = torch.cat([o["embeddings"] for o in out])
    with torch.no_grad():
        ref_emb = ref_enc.encode(dm.x)
        assert torch.allclose(emb, ref_emb, atol=1e-5)
        assert torch.allclose(probs(out), ref_head(ref_emb).softmax(-1), atol=1e-5)
        model.encoder.eval()
        assert not torch.allclose(emb, model.encoder.encode(dm.x), atol=1e-2)  # not the live weights
        model.train()
        h = model.features(dm.x)
        assert torch.equal(h, model.encoder.encode(dm.x)) and torch.equal(model.classify(h), model.head(h))
        model.eval()
        reference_logits = model(dm.x)

    path = tmp_path / "ema.ckpt"
    t.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)
    assert "ema.head.weight" in ckpt["state_dict"] and "encoder" not in ckpt["hyper_parameters"]
    loaded = FineTuneClassifier.load_from_checkpoint(path, encoder=encoder(seed=1)).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(dm.x), reference_logits, atol=1e-5)
    assert torch.equal(loaded.ema["head"].weight, model.ema["head"].weight)

    # resuming training restores the EMA, then keeps averaging
    class AtStart(L.Callback):
        def on_train_start(self, trainer, module):
            self.ema = copy.deepcopy(module.ema.state_dict())

    resumed, at_start = FineTuneClassifier(encoder(seed=1), ema_decay=0.5), AtStart()
    with seeded(0):
        trainer(tmp_path, 4, [at_start]).fit(resumed, datamodule=dm, ckpt_path=path)
    assert all(torch.equal(v, model.ema.state_dict()[k]) for k, v in at_start.ema.items())
    w = resumed.ema["head"].weight
    assert torch.allclose(w, 0.5 * model.ema["head"].weight + 0.5 * resumed.head.weight, atol=1e-6)


def test_flexmatch_step_on_images_updates_the_table(tmp_path, tiny_clip_config):  # noqa: F811
    g = torch.Generator().manual_seed(0)
    batch = {
        "lb": {"x": torch.rand(4, 1, 20, 20, generator=g), "y": torch.tensor([0, 1, 0, 1]), "index": torch.arange(4)},
        "ulb": {"x_w": torch.rand(8, 1, 20, 20, generator=g), "x_s": torch.rand(8, 1, 20, 20, generator=g),
                "index": torch.arange(4, 12)},
    }  # fmt: skip
    ssl = FlexMatch(pool_size=16, p_cutoff=0.5)  # 2 classes: every confidence reaches 0.5
    model = FineTuneClassifier(clip(tiny_clip_config), num_classes=2, ssl=ssl)
    t = trainer(tmp_path, 1)
    with seeded(0):
        t.fit(model, train_dataloaders=DataLoader([batch], batch_size=None))
    assert ssl.num_classes == 2
    table = ssl.selected_label
    assert (table[4:12] >= 0).all() and (table[:4] == -1).all() and (table[12:] == -1).all()
    assert {"train/sup_loss", "train/unsup_loss", "train/mask_ratio"} <= set(t.callback_metrics)


def test_deepcopied_template_fits_and_copies_stay_independent(tmp_path, tiny_clip_config):  # noqa: F811
    template = FineTuneClassifier(clip(tiny_clip_config), ema_decay=0.9)
    start = {k: v.clone() for k, v in template.encoder.state_dict().items()}
    model = copy.deepcopy(template)
    with seeded(0):
        trainer(tmp_path, 2).fit(model, datamodule=Images())
    assert template.head is None and template.ema is None  # the template is untouched
    assert all(torch.equal(v, start[k]) for k, v in template.encoder.state_dict().items())
    assert not torch.equal(model.ema["head"].weight, model.head.weight)
    pairs = zip(model.ema["encoder"].parameters(), model.encoder.parameters(), strict=True)
    assert all(e.data_ptr() != p.data_ptr() and not e.requires_grad for e, p in pairs)  # a copy, out of the optimiser
    assert model.ema["encoder"].clip_model is model.encoder.clip_model  # the text tower is shared, not copied
    head, ema = model.head, model.ema
    model.configure_model()  # a second call builds nothing new
    assert model.head is head and model.ema is ema
    clone = copy.deepcopy(model)
    assert clone.ema["head"].weight.data_ptr() != model.ema["head"].weight.data_ptr()
    assert clone.ema["encoder"].clip_model is clone.encoder.clip_model is not model.encoder.clip_model
    clone.update_ema()
    assert not torch.equal(clone.ema["head"].weight, model.ema["head"].weight)


def _bn_stats(encoder):
    return {k: v.clone() for k, v in encoder.state_dict().items() if "running_" in k}


def test_freeze_norm_keeps_the_pretrained_batch_norm_statistics(tmp_path):
    encoder = TimmEncoder("test_resnet", image_size=32)
    stats = _bn_stats(encoder)
    assert stats  # the test needs batch norm
    rec = Record()
    model = FineTuneClassifier(encoder, backbone_lr=1e-3, freeze_norm=True)
    with seeded(0):
        trainer(tmp_path, 4, [rec]).fit(model, datamodule=Images())
    assert all(torch.equal(v, stats[k]) for k, v in _bn_stats(encoder).items())
    norms = [m for m in encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    assert model.training and all(not m.training for m in norms)
    assert not torch.equal(norms[0].weight, rec.states[0][next(k for k in rec.states[0] if k.endswith("bn1.weight"))])
    # without it, the same training moves the statistics
    encoder2 = TimmEncoder("test_resnet", image_size=32)
    with seeded(0):
        trainer(tmp_path, 4).fit(FineTuneClassifier(encoder2, backbone_lr=1e-3), datamodule=Images())
    assert any(not torch.equal(v, stats[k]) for k, v in _bn_stats(encoder2).items())


def test_head_only_steps_leave_the_encoder_untouched_then_fine_tune(tmp_path):
    """LP-FT: 8 steps, head_only_fraction 0.5: the backbone's rate is 0 for 4 steps, then warms up."""
    encoder = TimmEncoder("test_resnet", image_size=32)
    rec = Record()
    model = FineTuneClassifier(encoder, backbone_lr=1e-3, head_lr=1e-2, warmup_fraction=0.25, head_only_fraction=0.5)
    with seeded(0):
        trainer(tmp_path, 8, [rec]).fit(model, datamodule=Images())
    enc_keys = [k for k in rec.states[0] if k.startswith("encoder.")]
    head_keys = [k for k in rec.states[0] if k.startswith("head.")]
    for step in range(1, 5):  # after each of the first 4 steps: encoder (and its BN statistics) as it started
        assert all(torch.equal(rec.states[step][k], rec.states[0][k]) for k in enc_keys)
        assert not torch.equal(rec.states[step][head_keys[0]], rec.states[step - 1][head_keys[0]])
    assert any(not torch.equal(rec.states[8][k], rec.states[0][k]) for k in enc_keys)
    # backbone: 0 for 4 steps, then warm-up of int(0.25 * 4) = 1 step and cosine over the other 3
    backbone = [0.0] * 4 + [1.0] + [0.5 * (1 + math.cos(math.pi * s / 3)) for s in range(3)]
    assert [lr for lr, _ in rec.lrs] == pytest.approx([1e-3 * f for f in backbone])
    assert [lr for _, lr in rec.lrs] == pytest.approx([1e-2 * warmup_cosine(s, 2, 8) for s in range(8)])
    assert all(rec.modes)  # back in train mode after every head-only step


def test_head_only_fraction_must_be_below_one():
    with pytest.raises(ConfigError, match="head_only_fraction"):
        FineTuneClassifier(TimmEncoder("test_resnet", image_size=32), head_only_fraction=1.0)
