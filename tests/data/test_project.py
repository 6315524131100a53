"""ImageProject: a person's image folder as a pool with stable indices, bad files reported, optional test split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from lbench.data.project import INDEX_HEADER, ImageProject
from lbench.errors import ConfigError, DataError


def png(path: Path, value: int = 0, size: tuple[int, int] = (12, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 255 - value, 7)).save(path)


def make_folder(root: Path) -> Path:
    """b.png, a.png, nested/c.png (unlabeled), cat/1.png, dog/2.png (labeled), a corrupt and a text file."""
    png(root / "b.png", 10)
    png(root / "a.png", 20)
    png(root / "nested" / "deep" / "c.png", 30)
    png(root / "cat" / "1.png", 40)
    png(root / "dog" / "2.png", 50)
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "notes.txt").write_text("hello")
    (root / ".hidden.png").write_bytes(b"ignored")
    return root


def open_pool(root: Path, **kwargs):
    return ImageProject(str(root), image_size=16, **kwargs).pool_split()


def test_pool_lists_every_image_sorted_and_reports_bad_files(tmp_path):
    root = make_folder(tmp_path / "photos")
    with pytest.warns(UserWarning, match=r"skipped 2 file\(s\).*broken.jpg \(cannot be decoded\).*notes.txt"):
        split = open_pool(root)
    assert split.files == ["a.png", "b.png", "cat/1.png", "dog/2.png", "nested/deep/c.png"]
    assert split.skipped == [("broken.jpg", "cannot be decoded"), ("notes.txt", "not an image file")]
    assert split.targets.tolist() == [-1] * 5
    image, label, index = split[4]
    assert image.shape == (3, 16, 16) and label == -1 and index == 4
    assert split.item_id(2) == "cat/1.png"
    index_file = root / ".lbench" / "index.txt"
    assert index_file.read_text().splitlines() == [INDEX_HEADER, *split.files]


def test_initial_labels_from_class_folders(tmp_path):
    root = make_folder(tmp_path / "photos")
    with pytest.warns(UserWarning):
        project = ImageProject(str(root), image_size=16)
        assert project.class_names == ("cat", "dog", "nested")  # default: the top-level sub-folders
        given = ImageProject(str(root), classes=["dog", "cat"], image_size=16)
        assert given.initial_labels() == {2: 1, 3: 0}  # cat/1.png -> cat (1), dog/2.png -> dog (0)
    assert given.num_classes == 2


def test_indices_stay_stable_when_files_are_added(tmp_path):
    root = make_folder(tmp_path / "photos")
    with pytest.warns(UserWarning):
        first = open_pool(root)
    before = first.files
    png(root / "0first.png", 60)  # sorts before every old file
    png(root / "cat" / "0.png", 70)
    with pytest.warns(UserWarning):
        project = ImageProject(str(root), classes=["cat", "dog"], image_size=16)
        after = project.pool_split()
    assert after.files[: len(before)] == before
    assert after.files[len(before) :] == ["0first.png", "cat/0.png"]  # appended, sorted among themselves
    assert project.initial_labels() == {2: 0, 3: 1, 6: 0}
    assert after.content_hash != first.content_hash


def test_removed_file_keeps_its_index_and_is_not_served(tmp_path):
    root = make_folder(tmp_path / "photos")
    with pytest.warns(UserWarning):
        before = open_pool(root)
    (root / "b.png").unlink()
    missing = pytest.warns(UserWarning, match=r"1 indexed image file\(s\) are missing.*b.png")
    with pytest.warns(UserWarning, match="skipped 2"), missing:
        project = ImageProject(str(root), classes=["cat", "dog"], image_size=16)
        after = project.pool_split()
    assert after.files == before.files and after.missing == [1]
    assert project.missing() == ["b.png"]
    with pytest.raises(DataError, match=r"b.png \(item 1 .*\) was removed"):
        after[1]
    assert after[0][0].shape == (3, 16, 16)
    assert after.content_hash != before.content_hash


def test_fixed_broken_file_is_appended_and_torn_index_line_dropped(tmp_path):
    root = make_folder(tmp_path / "photos")
    with pytest.warns(UserWarning):
        files = open_pool(root).files
    index_file = root / ".lbench" / "index.txt"
    with open(index_file, "a") as f:
        f.write("half-written/pa")  # a crash in the middle of an append
    png(root / "broken.jpg", 80)  # the broken file was repaired
    with pytest.warns(UserWarning, match="notes.txt"):
        split = open_pool(root)
    assert split.files == [*files, "broken.jpg"]
    assert index_file.read_text().splitlines() == [INDEX_HEADER, *split.files]


def test_bad_files_are_an_error_on_request(tmp_path):
    root = make_folder(tmp_path / "photos")
    with pytest.raises(DataError, match="broken.jpg"):
        ImageProject(str(root), image_size=16, on_bad_image="error").pool_split()


def test_no_test_split_is_a_clear_error_and_test_dir_is_excluded(tmp_path):
    root = make_folder(tmp_path / "photos")
    with pytest.warns(UserWarning):
        project = ImageProject(str(root), classes=["cat", "dog"], image_size=16)
        project.pool_split()
    assert not project.has_test_split
    with pytest.raises(DataError, match="has no test split.*test_dir.*select --train true prints a cross-validated"):
        project.test_split()
    png(root / "test" / "dog" / "t1.png", 90)
    png(root / "test" / "cat" / "t2.png", 100)
    with pytest.warns(UserWarning):
        tested = ImageProject(
            str(root),
            classes=["cat", "dog"],
            test_dir="test",
            image_size=16,
            index_file=str(tmp_path / "i" / "index.txt"),
        )
        pool = tested.pool_split()
    assert not any(f.startswith("test/") for f in pool.files)
    test = tested.test_split()
    assert test.files == ["test/cat/t2.png", "test/dog/t1.png"] and test.targets.tolist() == [0, 1]
    png(root / "test" / "t3.png", 110)
    with pytest.raises(DataError, match="not in a class folder"):
        tested.test_split()


def test_index_folder_inside_root_is_excluded(tmp_path):
    root = make_folder(tmp_path / "photos")
    png(root / "proj" / "contact_sheet.png", 5)
    with pytest.warns(UserWarning):
        project = ImageProject(str(root), image_size=16, index_file=str(root / "proj" / "index.txt"))
        split = project.pool_split()
    assert "proj" not in project.class_names
    assert not any(f.startswith("proj/") for f in split.files)


def test_bad_arguments(tmp_path):
    root = make_folder(tmp_path / "photos")
    with pytest.raises(ConfigError, match="given twice"):
        ImageProject(str(root), classes=["cat", "cat"])
    with pytest.raises(DataError, match="does not exist"):
        ImageProject(str(tmp_path / "nope"))
    flat = tmp_path / "flat"
    png(flat / "x.png")
    with pytest.raises(DataError, match="no classes"):
        ImageProject(str(flat))
    empty = tmp_path / "empty"
    (empty / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="no readable image files"):
        ImageProject(str(empty)).pool_split()
    assert torch.is_tensor(ImageProject(str(flat), classes=["a"]).pool_split().present)
