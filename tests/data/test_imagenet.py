import shutil
from pathlib import Path

import pytest
import torch

from lbench.data import ImageNet
from lbench.data.imagenet import read_synset_mapping
from lbench.errors import DataError
from tests.data.fake_datasets import write_imagenet


@pytest.mark.parametrize("mapping", ["loc", "meta"])
def test_imagenet_folder_with_mapping_file(tmp_path, mapping):
    wnids = write_imagenet(tmp_path, per_class=(5, 3), val_per_class=4, mapping=mapping)
    ds = ImageNet(root=str(tmp_path), image_size=8)
    assert ds.wnids == tuple(wnids) and ds.class_names == ("tench", "goldfish") and ds.num_classes == 2
    pool = ds.pool_split()
    assert len(pool) == 8 and pool.targets.tolist() == [0] * 5 + [1] * 3
    assert pool.item_id(5) == "train/n01443537/n01443537_0.JPEG"
    image, label, index = pool[6]
    assert image.shape == (3, 8, 8) and 0 <= image.min() and image.max() <= 1
    assert (label, index) == (1, 6)
    test = ds.test_split()
    assert len(test) == 8 and test.targets.tolist() == [0] * 4 + [1] * 4


def test_imagenet_labelbench_val_test_parts(tmp_path):
    write_imagenet(tmp_path, per_class=(2, 2), val_per_class=6)
    val = ImageNet(root=str(tmp_path), test_part="val").test_split()
    test = ImageNet(root=str(tmp_path), test_part="test").test_split()
    assert (len(val), len(test)) == (3, 9)  # a quarter / the rest, as random_split(len // 4, ...)
    full = ImageNet(root=str(tmp_path)).test_split()
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(42))
    assert [val.item_id(i) for i in range(3)] == [full.item_id(i) for i in sorted(perm[:3].tolist())]
    assert {val.item_id(i) for i in range(3)}.isdisjoint(test.item_id(i) for i in range(9))


def test_imagenet_pool_subset(tmp_path):
    write_imagenet(tmp_path)
    pool = ImageNet(root=str(tmp_path), pool_size=4, seed=3).pool_split()
    assert len(pool) == 4 and pool.fingerprint["size"] == 4


def test_imagenet_errors(tmp_path):
    with pytest.raises(DataError, match="LOC_synset_mapping.txt or meta.bin"):
        ImageNet(root=str(tmp_path))
    write_imagenet(tmp_path)
    (tmp_path / "train" / "n09999999").mkdir()
    with pytest.raises(DataError, match="n09999999 is not a class"):
        ImageNet(root=str(tmp_path)).pool_split()
    (tmp_path / "bad.txt").write_text("not a mapping\n")
    with pytest.raises(DataError, match="cannot read the ImageNet class mapping"):
        read_synset_mapping(tmp_path / "bad.txt")


def test_imagenet_kaggle_layout_flat_val_with_solution_file(tmp_path):
    """Kaggle: ILSVRC/Data/CLS-LOC/{train/<wnid>, val/*.JPEG}; LOC_synset_mapping.txt + LOC_val_solution.csv on top."""
    sorted_root = tmp_path / "sorted"
    write_imagenet(sorted_root, per_class=(3, 2), val_per_class=4)
    kaggle = tmp_path / "kaggle"
    root = kaggle / "ILSVRC" / "Data" / "CLS-LOC"
    shutil.copytree(sorted_root / "train", root / "train")
    (root / "val").mkdir(parents=True)
    lines = ["ImageId,PredictionString"]
    for f in sorted((sorted_root / "val").rglob("*.JPEG"), key=lambda p: p.name, reverse=True):
        shutil.copy(f, root / "val" / f.name)
        lines.append(f"{f.stem},{f.parent.name} 1 2 30 40 {f.parent.name} 5 6 7 8")
    (kaggle / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")
    shutil.copy(sorted_root / "LOC_synset_mapping.txt", kaggle / "LOC_synset_mapping.txt")
    flat = ImageNet(root=str(root), mapping_file=str(kaggle / "LOC_synset_mapping.txt"), test_part="test")
    ref = ImageNet(root=str(sorted_root), test_part="test")
    a, b = flat.test_split(), ref.test_split()
    assert a.targets.tolist() == b.targets.tolist()
    assert [Path(a.item_id(i)).name for i in range(len(a))] == [Path(b.item_id(i)).name for i in range(len(b))]
    assert torch.equal(a[0][0], b[0][0])
    (kaggle / "LOC_val_solution.csv").unlink()
    with pytest.raises(DataError, match="LOC_val_solution.csv does not exist"):
        flat.test_split()
