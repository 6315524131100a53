"""Every config in configs/ resolves through the real CLI (--print_config); the paper's run on CPU with tiny data."""

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import CONFIGS, run_cli
from tests.data.fake_datasets import write_cifar10, write_cifar100, write_fmow, write_imagenet, write_iwildcam

ALL = sorted(p.relative_to(CONFIGS).as_posix() for p in CONFIGS.rglob("*.yaml"))
PAPER = sorted(n for n in ALL if n.startswith("paper/"))
#: Overlays compose after a base config (a proxy paper config has every key they touch).
OVERLAY_BASE = {"encoder": "paper/cifar10_proxy_shallow_b1000.yaml", "proxy": "paper/cifar10_proxy_shallow_b1000.yaml",
                "query": "paper/cifar10_proxy_shallow_b1000.yaml"}  # fmt: skip


def print_config(capsys, *args):
    """``lbench <args> --print_config``: the resolved config as a dict (fails on any error)."""
    with pytest.raises(SystemExit) as e:
        run_cli([*args, "--print_config"], capsys)
    out = capsys.readouterr()
    assert e.value.code == 0, out.err
    return yaml.safe_load(out.out)


def resolve(name, capsys):
    path = str(CONFIGS / name)
    top = name.split("/")[0]
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if "class_path" in raw:  # a value file: data/*.yaml, model/*.yaml
        key = {"data": "--data", "model": "--model"}[top]
        return print_config(capsys, "run", "-c", "smoke", key, path)
    if set(raw) == {"trainer"}:  # trainer settings for fit/select
        return print_config(capsys, "fit", "-c", path, "--model", str(CONFIGS / "model/linear.yaml"), "--data",
                            str(CONFIGS / "data/digits.yaml"))  # fmt: skip
    if "data" in raw and "model" in raw and "arms" in raw:  # a whole run
        return print_config(capsys, "run", "-c", path)
    base = OVERLAY_BASE.get(top, "default.yaml")  # flexmatch.yaml, point_eval.yaml: after a run config
    return print_config(capsys, "run", "-c", str(CONFIGS / base), "-c", path)


@pytest.mark.parametrize("name", ALL)
def test_every_config_resolves(name, capsys):
    """Data sets that are not on this machine do not matter: --print_config builds nothing."""
    assert isinstance(resolve(name, capsys), dict)


#: (labels at the end, labels per round, seeds) of each paper config, from the paper.
EXPECTED = {
    "cifar10_proxy_shallow_b1000": (10_000, 1000, 4), "cifar10_proxy_shallow_b200": (4000, 200, 4),
    "cifar10_proxy_linear_b1000": (10_000, 1000, 4), "cifar10_finetune_b1000": (10_000, 1000, 4),
    "cifar100_proxy_linear_b1000": (10_000, 1000, 4), "cifar100_finetune_b1000": (10_000, 1000, 4),
    "imagenet_proxy_shallow_b50000": (400_000, 50_000, 2), "imagenet_finetune_b50000": (400_000, 50_000, 2),
    "imagenet_coca_finetune_b50000": (400_000, 50_000, 2), "fmow_proxy_shallow_b3000": (30_000, 3000, 4),
    "fmow_finetune_b3000": (30_000, 3000, 4), "iwildcam_proxy_shallow_b3000": (21_000, 3000, 4),
    "iwildcam_finetune_b3000": (21_000, 3000, 4),
}  # fmt: skip


def test_paper_configs_have_the_papers_budgets(capsys):
    assert sorted(EXPECTED) == [Path(n).stem for n in PAPER]
    for name in PAPER:
        total, budget, seeds = EXPECTED[Path(name).stem]
        cfg = resolve(name, capsys)
        assert cfg["initial_budget"] + cfg["rounds"] * cfg["budget"] == total, name
        assert cfg["budget"] == budget and len(cfg["seeds"]) == seeds, name
        assert cfg["trainer"]["devices"] == "auto" and cfg["trainer"]["accelerator"] == "gpu"
        dataset = cfg["data"]["init_args"]["dataset"]
        part = dataset["init_args"]["test_part"]
        assert part == ("id_test" if name.split("/")[1].startswith(("fmow", "iwildcam")) else "test")
        if "proxy" in name:  # selection via proxy: FlexMatch proxy, point evaluation with CLIP fine-tuning
            assert cfg["model"]["init_args"]["ssl"]["class_path"].endswith("FlexMatch")
            pe = cfg["point_eval"]["init_args"]["model"]["init_args"]
            assert pe["zero_shot_head"] and pe["encoder"]["init_args"]["trainable"]


def test_encoder_overlay_on_a_run_without_point_eval_adds_one(capsys):
    cfg = print_config(capsys, "run", "-c", "smoke", "-c", "encoder/clip_vit_b32")
    assert cfg["data"]["init_args"]["encoder"]["init_args"]["model_name"] == "ViT-B-32"
    assert cfg["point_eval"]["init_args"]["model"]["class_path"].endswith("FineTuneClassifier")


def test_overlays_compose(capsys):
    cfg = print_config(capsys, "run", "-c", "paper/imagenet_proxy_shallow_b50000", "-c", "encoder/coca_vit_b32",
                       "-c", "proxy/linear", "-c", "query/margin")  # fmt: skip
    assert cfg["data"]["init_args"]["encoder"]["init_args"]["model_name"] == "coca_ViT-B-32"
    point_eval = cfg["point_eval"]["init_args"]["model"]["init_args"]
    assert point_eval["encoder"]["init_args"]["model_name"] == "coca_ViT-B-32"
    assert point_eval["encoder"]["init_args"]["trainable"] is True
    assert point_eval["backbone_lr"] == 1e-5 and point_eval["zero_shot_head"] is True  # the paper config's, kept
    assert cfg["point_eval"]["init_args"]["batch_size"] == 80
    assert cfg["model"]["init_args"]["hidden_dim"] is None and cfg["model"]["init_args"]["ssl"] is not None
    assert [a["class_path"].rsplit(".", 1)[1] for a in cfg["arms"]] == ["Random", "Margin"]
    assert cfg["data"]["init_args"]["dataset"]["class_path"].endswith("ImageNet")  # the rest is the paper config's


# -- end to end on CPU with tiny data: the paper configs with the data root, encoder and sizes overridden ----------
TINY = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.max_epochs", "2",
        "--seeds", "[0]", "--rounds", "2", "--budget", "4", "--initial_budget", "6", "--report", "false"]  # fmt: skip
PIXELS = ["--data.init_args.encoder", "PixelEncoder", "--data.init_args.encoder.init_args.image_size", "4",
          "--data.init_args.encoder.init_args.channels", "3", "--data.init_args.weak_views", "1",
          "--data.init_args.strong_views", "1", "--data.init_args.embed_batch_size", "16"]  # fmt: skip
#: A tiny timm model instead of CLIP for the point evaluation (no CLIP weights here, so no zero-shot head).
TINY_POINT_EVAL = ["--point_eval.model.init_args.encoder", "TimmEncoder",
                   "--point_eval.model.init_args.encoder.init_args.model_name", "test_convnext",
                   "--point_eval.model.init_args.encoder.init_args.image_size", "32",
                   "--point_eval.model.init_args.encoder.init_args.trainable", "true",
                   "--point_eval.model.init_args.zero_shot_head", "false",
                   "--point_eval.model.init_args.backbone_lr", "0.001", "--point_eval.model.init_args.head_lr", "0.01",
                   "--point_eval.model.init_args.ssl.init_args.uratio", "1",
                   "--point_eval.max_epochs", "1", "--point_eval.batch_size", "4", "--point_eval.num_workers", "0",
                   "--point_eval.precision", "32-true"]  # fmt: skip


def _run(tmp_path, capsys, config, root, *extra):
    out = tmp_path / "run"
    rc, stdout, err = run_cli(["run", "-c", config, "--out_dir", str(out), "--data.init_args.cache_dir",
                               str(tmp_path / "cache"), "--data.init_args.dataset.init_args.root", str(root),
                               *TINY, *extra], capsys)  # fmt: skip
    assert rc == 0, err
    rounds = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    return out, rounds


def _arms(*names):
    return ["--arms", "[" + ", ".join(names) + "]"]


def test_cifar10_proxy_shallow_paper_config_end_to_end(tmp_path, capsys):
    """paper/cifar10_proxy_shallow_b1000 as shipped apart from sizes: FlexMatch shallow proxy + point evaluation."""
    write_cifar10(tmp_path / "data", per_batch=6, test=12)
    out, rounds = _run(tmp_path, capsys, "paper/cifar10_proxy_shallow_b1000", tmp_path / "data", *PIXELS,
                       *_arms("Margin", "Galaxy"), *TINY_POINT_EVAL)  # fmt: skip
    arms = ("margin", "galaxy")
    assert {(r["arm"], r["round"]) for r in rounds} == {(a, k) for a in arms for k in range(3)}
    assert [r["num_labeled"] for r in rounds if r["arm"] == "margin"] == [6, 10, 14]
    assert all(0.0 <= r["test_acc"] <= 1.0 for r in rounds)
    evals = [json.loads(line) for line in (out / "point_eval.jsonl").read_text().splitlines()]
    assert len(evals) == 2 and all(e["num_labeled"] == 14 for e in evals)
    run = json.loads((out / "run.json").read_text())
    assert run["description"]["class_names"][0] == "airplane" and len(run["description"]["class_names"]) == 10


def test_cifar100_linear_and_imbalanced_cifar10_end_to_end(tmp_path, capsys):
    write_cifar100(tmp_path / "data", train=40, test=10)
    _, rounds = _run(tmp_path, capsys, "paper/cifar100_proxy_linear_b1000", tmp_path / "data", *PIXELS,
                     *_arms("Random", "Badge"), "--point_eval", "null")  # fmt: skip
    assert len(rounds) == 6 and {r["arm"] for r in rounds} == {"random", "badge"}
    write_cifar10(tmp_path / "c10", per_batch=20, test=12)
    out = tmp_path / "lt"
    rc, _, err = run_cli(["run", "-c", "smoke", "--data", str(CONFIGS / "data/cifar10_lt100.yaml"), "--out_dir",
                          str(out), "--data.init_args.dataset.init_args.dataset.init_args.root", str(tmp_path / "c10"),
                          "--data.init_args.dataset.init_args.imbalance_ratio", "4", "--data.init_args.cache_dir",
                          str(tmp_path / "cache"), "--data.init_args.encoder", "PixelEncoder",
                          "--data.init_args.encoder.init_args.image_size", "4",
                          "--data.init_args.encoder.init_args.channels", "3", "--seeds", "[0]", "--rounds", "1",
                          "--budget", "5", "--initial_budget", "5", "--report", "false"], capsys)  # fmt: skip
    assert rc == 0, err
    last = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()][-1]
    assert sum(last["label_counts"]) == 10 and len(last["label_counts"]) == 10


def test_imagenet_fmow_iwildcam_paper_configs_end_to_end(tmp_path, capsys):
    write_imagenet(tmp_path / "imagenet", per_class=(8, 6), val_per_class=4)
    write_fmow(tmp_path / "wilds")
    write_iwildcam(tmp_path / "wilds")
    small = ["--data.init_args.dataset.init_args.image_size", "8", "--point_eval", "null"]
    for config, root, arms in (
        ("paper/imagenet_proxy_shallow_b50000", tmp_path / "imagenet", ("Random", "Margin")),
        ("paper/iwildcam_proxy_shallow_b3000", tmp_path / "wilds", ("Random", "Galaxy")),
    ):
        _, rounds = _run(tmp_path / config.split("/")[1], capsys, config, root, *PIXELS, *small, *_arms(*arms))
        assert len(rounds) == 6, config
    # fMoW's tiny pool has 4 items: 2 initial labels + 1 round of 2
    _, rounds = _run(tmp_path / "fmow", capsys, "paper/fmow_proxy_shallow_b3000", tmp_path / "wilds", *PIXELS,
                     *small, *_arms("Random", "Entropy"), "--initial_budget", "2", "--budget", "1",
                     "--rounds", "2")  # fmt: skip
    assert [r["num_labeled"] for r in rounds if r["arm"] == "entropy"] == [2, 3, 4]


def test_cifar10_finetune_paper_config_end_to_end(tmp_path, capsys):
    """paper/cifar10_finetune_b1000 (selection with end-to-end fine-tuning every round), a tiny timm model for CLIP."""
    write_cifar10(tmp_path / "data", per_batch=4, test=8)
    model = ["--model.init_args.encoder", "TimmEncoder", "--model.init_args.encoder.init_args.model_name",
             "test_convnext", "--model.init_args.encoder.init_args.image_size", "32",
             "--model.init_args.encoder.init_args.trainable", "true", "--model.init_args.zero_shot_head", "false",
             "--model.init_args.ssl.init_args.uratio", "1", "--data.init_args.batch_size", "4",
             "--data.init_args.num_workers", "0", "--trainer.precision", "32-true",
             "--trainer.max_epochs", "1"]  # fmt: skip
    out = tmp_path / "run"
    rc, _, err = run_cli(["run", "-c", "paper/cifar10_finetune_b1000", "--out_dir", str(out),
                          "--data.init_args.dataset.init_args.root", str(tmp_path / "data"), *TINY, *model,
                          "--rounds", "1", *_arms("Random", "Bait")], capsys)  # fmt: skip
    assert rc == 0, err
    rounds = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert [r["num_labeled"] for r in rounds if r["arm"] == "bait"] == [6, 10]
