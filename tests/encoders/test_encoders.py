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
