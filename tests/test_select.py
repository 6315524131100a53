"""select and validate from the command line: a trained model is required where it matters, outputs stay put."""

import shutil

import pytest
import torch

from lbench.pool import LabelPool
from tests.conftest import CONFIGS, run_cli


@pytest.fixture
def project(smoke_run, tmp_path, monkeypatch):
    """A pool file with labels from the smoke run, in a folder of its own; the cwd is another folder."""
    out, cache = smoke_run
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(out / "margin" / "seed_0" / "pool.json", folder / "pool.json")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    common = ["--model", str(CONFIGS / "model" / "linear.yaml"), "--data", str(CONFIGS / "data" / "digits.yaml"),
              "--data.init_args.pool_file", str(folder / "pool.json"),
              "--data.init_args.cache_dir", str(cache)]  # fmt: skip
    return folder, cwd, common


def _fit(folder, common, capsys, *extra):
    rc, _, err = run_cli(["fit", "-c", str(CONFIGS / "trainer_fit.yaml"), *common, "--trainer.default_root_dir",
                          str(folder / "fit"), "--trainer.max_epochs", "2", *extra], capsys)  # fmt: skip
    assert rc == 0, err
    return next((folder / "fit").rglob("last.ckpt"))


@pytest.mark.parametrize("query", ["Margin", "Badge", "Coreset", "Entropy"])
def test_select_without_a_trained_model_is_refused(project, capsys, query):
    folder, cwd, common = project
    before = (folder / "pool.json").read_bytes()
    rc, _, err = run_cli(["select", *common, "--query", query, "--budget", "5"], capsys)
    assert rc == 2 and err.count("\n") == 1 and err.startswith("lbench: error:")
    assert "--ckpt_path" in err and "Random" in err and "TypiClust" in err
    assert (folder / "pool.json").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["pool.json"] and list(cwd.iterdir()) == []


@pytest.mark.parametrize("query", ["Random", "TypiClust"])
def test_cold_start_select_writes_next_to_the_pool_and_nothing_in_cwd(project, capsys, query):
    folder, cwd, common = project
    rc, out, err = run_cli(["select", *common, "--query", query, "--budget", "5"], capsys)
    assert rc == 0, err
    rows = (folder / "selected.csv").read_text().splitlines()
    assert len(rows) == 6
    assert LabelPool.load(folder / "pool.json").pending == sorted(int(r.split(",")[1]) for r in rows[1:])
    assert list(cwd.iterdir()) == []  # no lightning_logs/ or selected.csv in the current directory
    assert sorted(p.name for p in folder.iterdir()) == [
        "batch_001.csv", "batch_001.labelstudio.json", "batch_001.png", "pool.json", "selected.csv",
        "stop_predictions.json",
    ]  # fmt: skip
    assert "stop signal" in out  # the first select has no previous model to compare with: it says so


def test_select_with_a_checkpoint_is_quiet_and_writes_no_logs(project, capsys):
    folder, cwd, common = project
    ckpt = _fit(folder, common, capsys)
    rc, out, err = run_cli(["select", *common, "--query", "Margin", "--budget", "5", "--ckpt_path", str(ckpt)],
                           capsys)  # fmt: skip
    assert rc == 0, err
    assert "dirpath has changed" not in err and "No seed found" not in err
    assert list(cwd.iterdir()) == [] and (folder / "selected.csv").exists()


def test_select_refuses_a_missing_checkpoint_and_an_unwritable_output(project, capsys, tmp_path):
    folder, _, common = project
    before = (folder / "pool.json").read_bytes()
    rc, _, err = run_cli(["select", *common, "--query", "Margin", "--budget", "5", "--ckpt_path",
                          str(tmp_path / "nope.ckpt")], capsys)  # fmt: skip
    assert rc == 2 and "nope.ckpt does not exist" in err
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    rc, _, err = run_cli(["select", *common, "--query", "Random", "--budget", "5", "--output",
                          str(blocker / "out.csv")], capsys)  # fmt: skip
    assert rc == 2 and "not a folder" in err and err.count("\n") == 1
    assert (folder / "pool.json").read_bytes() == before


def test_validate_needs_a_validation_split_then_works(project, capsys):
    folder, _, common = project
    ckpt = _fit(folder, common, capsys, "--data.init_args.val_fraction", "0.3")
    rc, _, err = run_cli(["validate", *common, "--ckpt_path", str(ckpt)], capsys)
    assert rc == 2 and "val_fraction" in err and "Traceback" not in err
    rc, out, err = run_cli(["validate", *common, "--ckpt_path", str(ckpt), "--data.init_args.val_fraction", "0.3"],
                           capsys)  # fmt: skip
    assert rc == 0, err
    assert "val/acc" in out and "val/balanced_acc" in out


def test_validation_split_is_held_out_and_stable(smoke_run):
    from lbench.data.digits import Digits
    from lbench.data.embeddings import EmbeddingDataModule
    from lbench.encoders import PixelEncoder

    _, cache = smoke_run
    dm = EmbeddingDataModule(Digits(), PixelEncoder(native_size=8), cache_dir=str(cache), val_fraction=0.25)
    dm.setup("fit")
    mask = dm.val_mask()
    assert abs(int(mask.sum()) - round(0.25 * dm.pool_size)) == 0
    assert mask.equal(dm.val_mask())  # a property of each pool item
    pool = dm.new_pool()
    import torch

    idx = torch.arange(0, 400)
    pool.add_labels(idx, torch.zeros(400, dtype=torch.long), round=0)
    dm.pool = pool
    train = {int(i) for b in dm.train_dataloader() for i in b["index"]}
    val = {int(i) for b in dm.val_dataloader() for i in b["index"]}
    assert not train & val and train | val == set(range(400))
    assert val == {i for i in range(400) if mask[i]}


def test_select_trains_on_the_labels_when_asked_and_reuses_the_model_until_they_change(project, capsys):
    folder, cwd, common = project
    args = ["select", *common, "--query", "Margin", "--budget", "5", "--train", "true",
            "--trainer.max_epochs", "2", "--trainer.accelerator", "cpu"]  # fmt: skip
    rc, out, err = run_cli(args, capsys)
    assert rc == 0, err
    assert "trained on 80 labels" in out and (folder / "proxy.ckpt").is_file()
    first = [int(r.split(",")[1]) for r in (folder / "selected.csv").read_text().splitlines()[1:]]
    trained = (folder / "proxy.ckpt").read_bytes()
    rc, out, err = run_cli(args, capsys)  # the same labels (5 more pending): the model is reused
    assert rc == 0 and "did not change" in out and (folder / "proxy.ckpt").read_bytes() == trained
    pool = LabelPool.load(folder / "pool.json")
    pool.add_labels(torch.tensor(first), torch.zeros(5, dtype=torch.long), round=5)
    pool.save(folder / "pool.json")
    rc, out, err = run_cli(args, capsys)
    assert rc == 0 and "trained on 85 labels" in out and (folder / "proxy.ckpt").read_bytes() != trained
    assert list(cwd.iterdir()) == []  # the training logged nothing into the current folder
    rc, _, err = run_cli([*args, "--ckpt_path", str(folder / "proxy.ckpt")], capsys)
    assert rc == 2 and "not both" in err
    kept = (folder / "proxy.ckpt").read_bytes()
    rc, out, err = run_cli([*args, "--query", "Entropy", "--budget", "3"], capsys)  # selection settings only
    assert rc == 0 and "did not change" in out, err
    rc, out, err = run_cli([*args, "--trainer.max_epochs", "3"], capsys)  # the same labels, another recipe
    assert rc == 0 and "trained on 85 labels" in out and (folder / "proxy.ckpt").read_bytes() != kept
