"""Selection with fine-tuning: ``run`` with a FineTuneClassifier on images, no proxy, no cache."""

import json

from tests.conftest import CONFIGS, run_cli


def test_run_selects_with_the_fine_tuned_model_every_round(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", "-c", str(CONFIGS / "smoke.yaml"), "--seeds", "[0]", "--rounds", "1", "--out_dir", str(out),
            "--report", "false", "--trainer.max_epochs", "1",
            "--model", "FineTuneClassifier", "--model.init_args.encoder", "TimmEncoder",
            "--model.init_args.encoder.init_args.model_name", "test_convnext",
            "--model.init_args.encoder.init_args.image_size", "32", "--model.init_args.freeze_norm", "true",
            "--data", "ImageDataModule", "--data.init_args.dataset", "Digits",
            "--data.init_args.batch_size", "16", "--data.init_args.samples_per_epoch", "32"]  # fmt: skip
    rc, _, err = run_cli(args, capsys)
    assert rc == 0, err
    records = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert [(r["arm"], r["round"], r["num_labeled"]) for r in records] == [
        ("random", 0, 20),
        ("random", 1, 40),
        ("margin", 0, 20),
        ("margin", 1, 40),
    ]
    first = {r["arm"]: r for r in records if r["round"] == 0}
    assert len(first["margin"]["selected"]) == 20 and len(set(first["margin"]["selected"])) == 20
    assert first["margin"]["selected"] != first["random"]["selected"]  # margin scored the pool with the model
    meta = json.loads((out / "run.json").read_text())
    assert meta["description"]["encoder"] is None and meta["description"]["embed_seconds"] == 0.0
    assert not (tmp_path / "checkpoints").exists()  # nothing cached: images are served directly
