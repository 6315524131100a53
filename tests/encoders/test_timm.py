import pytest
import timm
import torch

from lbench.encoders import TimmEncoder
from lbench.errors import ConfigError, DataError


def test_timm_encoder_uses_timm_data_config_and_seeded_weights():
    enc = TimmEncoder("test_vit")
    model = timm.create_model("test_vit", pretrained=False)
    cfg = timm.data.resolve_model_data_config(model)
    assert enc.image_size == cfg["input_size"][-1] and enc.embed_dim == model.num_features
    assert enc.transform.mean == cfg["mean"] and enc.transform.interpolation == cfg["interpolation"]
    x = torch.rand(2, 1, 28, 28)
    z = enc.encode(x)
    assert z.shape == (2, enc.embed_dim) and not z.requires_grad
    same, other = TimmEncoder("test_vit"), TimmEncoder("test_vit", seed=1)
    assert torch.equal(same.encode(x), z) and same.fingerprint() == enc.fingerprint()
    assert not torch.equal(other.encode(x), z) and other.fingerprint() != enc.fingerprint()
    fp = enc.fingerprint()
    assert fp["weights"]["source"] == "random" and fp["weights"]["seed"] == 0 and fp["code_version"]
    assert TimmEncoder("test_vit", image_size=64).fingerprint() != fp
    assert TimmEncoder("test_vit", global_pool="avg").fingerprint() != fp
    with pytest.raises(ConfigError, match="unknown timm model"):
        TimmEncoder("no_such_model")


def test_timm_checkpoint_round_trip_and_errors(tmp_path):
    reference = timm.create_model("test_vit", pretrained=False, num_classes=10)  # a fine-tuned head is dropped
    ckpt = tmp_path / "vit.pth"
    torch.save(reference.state_dict(), ckpt)
    enc = TimmEncoder("test_vit", checkpoint_path=str(ckpt))
    x = torch.rand(3, 3, 40, 40)
    with torch.no_grad():
        expected = reference.forward_head(reference.forward_features(enc.preprocess(x)), pre_logits=True)
    assert torch.allclose(enc.encode(x), expected, atol=1e-5)
    assert enc.fingerprint()["weights"]["source"] == "file"
    assert TimmEncoder("test_vit", checkpoint_path=str(ckpt), image_size=64).encode(x).shape == (3, enc.embed_dim)

    with pytest.raises(DataError, match=f"{tmp_path / 'missing.pth'} does not exist"):
        TimmEncoder("test_vit", checkpoint_path=str(tmp_path / "missing.pth"))
    wrong = tmp_path / "resnet.pth"
    torch.save(timm.create_model("test_resnet", pretrained=False).state_dict(), wrong)
    with pytest.raises(DataError, match=f"checkpoint {wrong} does not fit test_vit") as e:
        TimmEncoder("test_vit", checkpoint_path=str(wrong))
    assert "\n" not in str(e.value)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"garbage")
    with pytest.raises(DataError, match=f"cannot read timm checkpoint {garbage}"):
        TimmEncoder("test_vit", checkpoint_path=str(garbage))
    with pytest.raises(ConfigError, match="not both"):
        TimmEncoder("test_vit", checkpoint_path=str(ckpt), pretrained=True)


def test_timm_trainable_gradients_reach_the_backbone():
    frozen = TimmEncoder("test_efficientnet")
    frozen.train()
    assert not frozen.training and not frozen.model.training
    assert not any(p.requires_grad for p in frozen.parameters())
    enc = TimmEncoder("test_efficientnet", trainable=True)
    enc.train()
    assert enc.model.training
    x = torch.rand(4, 3, 32, 32)
    enc.encode(x).pow(2).sum().backward()
    assert enc.model.conv_stem.weight.grad is not None and enc.model.conv_stem.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in enc.parameters())
    enc.eval()
    assert not enc.model.training
    before = enc.model.bn1.running_mean.clone()
    enc.encode(x)
    assert torch.equal(before, enc.model.bn1.running_mean)  # eval mode: BN statistics fixed
