import pytest

from lbench.data import FMoW, IWildCam, WildsDataset
from lbench.data.wilds import FMOW_CLASSES
from lbench.errors import DataError
from tests.data.fake_datasets import IWILDCAM_NAMES, write_fmow, write_iwildcam


def test_iwildcam_true_classes_and_id_splits(tmp_path):
    rows = write_iwildcam(tmp_path)
    ds = IWildCam(root=str(tmp_path), image_size=8)
    assert ds.num_classes == 5 and list(ds.class_names) == IWILDCAM_NAMES  # max(y) + 1 over all splits, no folding
    pool, test = ds.pool_split(), ds.test_split()
    train = [r for r in rows if r["split"] == "train"]
    assert len(pool) == len(train) and pool.targets.tolist() == [r["y"] for r in train]
    assert test.targets.tolist() == [1, 2, 4]  # id_test, the paper's test split
    assert pool.item_id(0) == "train/" + train[0]["filename"]
    image, label, index = pool[2]
    assert image.shape == (3, 8, 8) and (label, index) == (train[2]["y"], 2)
    assert len(IWildCam(root=str(tmp_path), test_part="id_val").test_split()) == 2


def test_fmow_time_after_2016_scheme(tmp_path):
    expected = write_fmow(tmp_path)
    ds = FMoW(root=str(tmp_path), image_size=8)
    assert ds.num_classes == 62 and ds.class_names == FMOW_CLASSES
    pool = ds.pool_split()
    assert [pool.item_id(i) for i in range(len(pool))] == [f"images/rgb_img_{r}.png" for r in expected["train"]]
    assert pool.targets.tolist() == [0, 61, 12, 60]  # airport, zoo, dam, wind_farm in WILDS' order
    for part in ("id_val", "id_test", "val", "test"):
        split = WildsDataset("fmow", root=str(tmp_path), test_part=part).test_split()
        assert [split.item_id(i) for i in range(len(split))] == [f"images/rgb_img_{r}.png" for r in expected[part]]
    image, label, index = pool[1]
    assert image.shape == (3, 8, 8) and (label, index) == (61, 1)


def test_wilds_missing_files_are_one_clear_line(tmp_path):
    for cls, needs in ((IWildCam, "metadata.csv"), (FMoW, "rgb_metadata.csv")):
        with pytest.raises(DataError) as e:
            cls(root=str(tmp_path)).pool_split()
        assert "\n" not in str(e.value) and needs in str(e.value) and "WILDS" in str(e.value)


def test_wilds_categories_must_name_every_class(tmp_path):
    write_iwildcam(tmp_path)
    path = tmp_path / "iwildcam_v2.0" / "categories.csv"
    path.write_text("\n".join(path.read_text().splitlines()[:-2]) + "\n")  # drop y = 4 (and the 99999 row)
    with pytest.raises(DataError, match="names no class for y = 4"):
        IWildCam(root=str(tmp_path)).pool_split()


def test_wilds_bad_arguments():
    with pytest.raises(DataError, match="iwildcam, fmow"):
        WildsDataset("camelyon")
    with pytest.raises(DataError, match="test_part"):
        WildsDataset("fmow", test_part="ood")
