import dataclasses
import json

import pytest
import torch

from lbench.encoders import EfficientNetLite0Encoder, OpenCLIPEncoder, PixelEncoder
from lbench.errors import ConfigError, DataError

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def sample_images():
    from sklearn.datasets import load_sample_images

    imgs = load_sample_images().images  # china.jpg, flower.jpg
    return torch.stack([torch.from_numpy(i.copy()).permute(2, 0, 1).float() / 255 for i in imgs])


def test_efficientnet_lite0_predicts_imagenet_classes():
    enc = EfficientNetLite0Encoder(image_size=224)
    top5 = enc.logits(sample_images()).topk(5).indices
    china = set(top5[0].tolist())
    # palace, bell cote, castle, church, dome, monastery: buildings of the Chinese temple photo
    assert china & {442, 449, 483, 497, 538, 698}
    assert int(top5[1, 0]) == 985  # daisy


def test_efficientnet_features_and_fingerprint():
    enc = EfficientNetLite0Encoder(image_size=64, features="blocks456")
    z = enc.encode(torch.rand(3, 1, 28, 28))
    assert z.shape == (3, 624) and enc.embed_dim == 624 and torch.isfinite(z).all()
    head = EfficientNetLite0Encoder(image_size=64, features="head")
    assert head.encode(torch.rand(2, 3, 32, 32)).shape == (2, 1280)
    assert enc.fingerprint() != head.fingerprint()
    assert enc.fingerprint() != EfficientNetLite0Encoder(image_size=96).fingerprint()
    fp = enc.fingerprint()
    assert fp["weights"]["source"] == "file" and fp["code_version"]
    assert fp["preprocess"] == {"size": 64, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear",
                                "antialias": True, "channels": 3}  # fmt: skip


def test_random_weights_are_seeded_and_fingerprinted():
    def weights(enc):
        return torch.cat([p.detach().flatten() for p in enc.parameters()])

    a, b = EfficientNetLite0Encoder(weights="none"), EfficientNetLite0Encoder(weights="none")
    assert torch.equal(weights(a), weights(b)) and a.fingerprint() == b.fingerprint()
    c = EfficientNetLite0Encoder(weights="none", seed=1)
    assert not torch.equal(weights(a), weights(c)) and a.fingerprint() != c.fingerprint()
    assert a.fingerprint()["weights"] == {"source": "random", "seed": 0, "sha256": a.fingerprint()["weights"]["sha256"]}
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(a.encode(x), b.encode(x))


def test_preprocessing_is_part_of_the_fingerprint():
    class Bicubic(EfficientNetLite0Encoder):
        def __init__(self):
            super().__init__(weights="none")
            self.transform = dataclasses.replace(self.transform, interpolation="bicubic")

    plain, bicubic = EfficientNetLite0Encoder(weights="none"), Bicubic()
    x = torch.rand(2, 1, 28, 28)
    assert not torch.equal(plain.encode(x), bicubic.encode(x))
    assert plain.fingerprint() != bicubic.fingerprint()


def test_efficientnet_bad_weights(tmp_path):
    bad = tmp_path / "w.pth"
    torch.save({"x": torch.zeros(2)}, bad)
    with pytest.raises(DataError, match="not an EfficientNet-Lite0 state dict"):
        EfficientNetLite0Encoder(weights=str(bad))
    with pytest.raises(ConfigError):
        EfficientNetLite0Encoder(features="nope")


@pytest.fixture
def tiny_clip_config(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_CLIP))
    return str(path)


def test_open_clip_local_checkpoint_round_trip(tmp_path, tiny_clip_config):
    import open_clip

    random = OpenCLIPEncoder("lbench-tiny-clip", pretrained=None, model_config=tiny_clip_config)
    assert random.embed_dim == 32 and random.image_size == 32
    ckpt = tmp_path / "tiny.pt"
    reference = open_clip.create_model("lbench-tiny-clip")
    torch.save(reference.state_dict(), ckpt)
    enc = OpenCLIPEncoder("lbench-tiny-clip", pretrained=str(ckpt), model_config=tiny_clip_config)
    images = torch.rand(4, 3, 40, 40)
    z = enc.encode(images)
    assert z.shape == (4, 32)
    assert torch.allclose(z.norm(dim=1), torch.ones(4), atol=1e-5)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(reference.encode_image(enc.preprocess(images)), dim=-1)
    assert torch.allclose(z, expected, atol=1e-5)
    assert enc.fingerprint()["weights"] != random.fingerprint()["weights"]
    grey = enc.encode(torch.rand(2, 1, 28, 28))
    assert grey.shape == (2, 32)


def test_open_clip_offline_hub_tag_is_a_clear_error(tiny_clip_config):
    with pytest.raises(DataError, match="local checkpoint"):
        OpenCLIPEncoder("lbench-tiny-clip", pretrained="laion2b_s34b_b79k", model_config=tiny_clip_config)
    with pytest.raises(ConfigError, match="unknown open_clip model"):
        OpenCLIPEncoder("no-such-model", pretrained=None)


def test_pixel_encoder():
    enc = PixelEncoder(native_size=8)
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(enc.encode(x), x.flatten(1))
    assert PixelEncoder(image_size=4).encode(torch.rand(2, 1, 8, 8)).shape == (2, 16)


def test_open_clip_random_init_is_seeded(tiny_clip_config):
    a = OpenCLIPEncoder("lbench-tiny-clip", pretrained=None, model_config=tiny_clip_config)
    b = OpenCLIPEncoder("lbench-tiny-clip", pretrained=None, model_config=tiny_clip_config)
    c = OpenCLIPEncoder("lbench-tiny-clip", pretrained=None, model_config=tiny_clip_config, seed=1)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(a.encode(x), b.encode(x)) and a.fingerprint() == b.fingerprint()
    assert not torch.equal(a.encode(x), c.encode(x)) and a.fingerprint() != c.fingerprint()
    assert a.fingerprint()["preprocess"]["interpolation"] == "bicubic"  # open_clip's own config


def test_open_clip_checkpoint_errors_name_the_file(tmp_path, tiny_clip_config):
    missing = tmp_path / "missing.pt"
    with pytest.raises(DataError, match=f"{missing} does not exist"):
        OpenCLIPEncoder("lbench-tiny-clip", pretrained=str(missing), model_config=tiny_clip_config)
    wrong = tmp_path / "wrong.pt"
    torch.save({"visual.proj": torch.zeros(3, 3)}, wrong)
    with pytest.raises(DataError, match=f"checkpoint {wrong} does not fit") as e:
        OpenCLIPEncoder("lbench-tiny-clip", pretrained=str(wrong), model_config=tiny_clip_config)
    assert "\n" not in str(e.value)


def test_open_clip_trainable_gradients_reach_the_tower(tiny_clip_config):
    frozen = OpenCLIPEncoder("lbench-tiny-clip", pretrained=None, model_config=tiny_clip_config)
    frozen.train()
    assert not frozen.training and not frozen.encode(torch.rand(2, 3, 32, 32)).requires_grad
    enc = OpenCLIPEncoder("lbench-tiny-clip", pretrained=None, model_config=tiny_clip_config, trainable=True)
    enc.train()
    assert enc.training and enc.visual.training
    enc.encode(torch.rand(2, 3, 32, 32)).pow(2).sum().backward()
    grads = [p.grad for p in enc.visual.parameters()]
    assert all(g is not None for g in grads) and enc.visual.conv1.weight.grad.abs().sum() > 0
    enc.eval()
    assert not enc.visual.training


def test_clip_zero_shot_head(tiny_clip_config):
    import open_clip

    from lbench.encoders import clip_zero_shot_head

    enc = OpenCLIPEncoder("lbench-tiny-clip", pretrained=None, model_config=tiny_clip_config)
    names, templates = ["cat", "dog", "airplane"], ["a photo of a {}.", "a drawing of a {}."]
    head = clip_zero_shot_head(enc, names, templates)
    assert head.shape == (3, enc.embed_dim)
    assert torch.allclose(head.norm(dim=1), torch.ones(3), atol=1e-5)
    tokenizer = open_clip.get_tokenizer("lbench-tiny-clip")
    with torch.no_grad():
        z = torch.nn.functional.normalize(
            enc.clip_model.encode_text(tokenizer([t.format("dog") for t in templates])), dim=-1
        )
    assert torch.allclose(head[1], torch.nn.functional.normalize(z.mean(0), dim=0), atol=1e-5)
    assert torch.allclose(clip_zero_shot_head(enc, names[::-1], templates), head.flip(0), atol=1e-6)
    with pytest.raises(ConfigError):
        clip_zero_shot_head(enc, names, ["no placeholder"])


def test_efficientnet_trainable_trains_only_what_feeds_the_features():
    enc = EfficientNetLite0Encoder(image_size=32, features="block4", weights="none", trainable=True)
    enc.train()
    assert enc.model.training
    enc.encode(torch.rand(2, 1, 28, 28)).sum().backward()
    assert enc.model.conv_stem.weight.grad.abs().sum() > 0
    used = [p for p in enc.parameters() if p.requires_grad]
    assert used and all(p.grad is not None for p in used)
    assert not any(p.requires_grad for p in enc.model.blocks[5].parameters())
    assert not any(p.requires_grad for p in enc.model.classifier.parameters())
