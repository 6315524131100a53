"""Every bad label file or option: one line on stderr, exit 2, every file byte-identical."""

import json

import pytest
import torch

from lbench.pool import LabelPool

from .conftest import item_id, label, snapshot

LS_TWO_CHOICES = json.dumps(
    [{"id": 5, "data": {"index": 4}, "annotations": [{"result": [{"value": {"choices": ["cat", "dog"]}}]}]}]
)
BAD_FILES = {
    "unknown index": ("a.csv", "index,label\n4,cat\n99,dog\n", "a.csv line 3: index 99 is not in the pool"),
    "negative index": ("a.csv", "index,label\n-1,dog\n", "a.csv line 2: index -1 is not in the pool"),
    "unknown path": ("a.csv", "path,label\nimg/9999.jpg,cat\n", "a.csv line 2: unknown id 'img/9999.jpg'"),
    "unknown class": ("a.csv", "index,label\n4,cow\n", "a.csv line 2: label 'cow' is not a class"),
    "class index as text": ("a.csv", "index,label\n4,7\n", "a.csv line 2: label '7' is not a class"),
    "class index out of range": ("a.json", '[{"index": 4, "label": 3}]', "a.json item 1: label 3 is not a class"),
    "duplicate row": ("a.csv", "index,label\n4,cat\n5,dog\n4,cat\n", "a.csv line 4: item 4 is repeated (also on"),
    "conflicting rows": ("a.csv", "index,label\n4,cat\n4,dog\n", "a.csv line 3: conflicting answers for item 4"),
    "conflict by path and index": (
        "a.json",
        json.dumps([{"index": 4, "label": "cat"}, {"path": item_id(4), "label": "skip"}]),
        "a.json item 2: conflicting answers for item 4",
    ),
    "already labeled otherwise": ("a.csv", "index,label\n0,dog\n", "a.csv line 2: item 0 is already labeled 'cat'"),
    "skip of a labeled item": ("a.csv", "index,label\n1,skip\n", "a.csv line 2: item 1 is already labeled 'dog'"),
    "empty file": ("a.csv", "", "a.csv is empty"),
    "blank file": ("a.json", "  \n\n", "a.json is empty"),
    "header only": ("a.csv", "index,label\n", "a.csv has no rows"),
    "no answers": ("a.csv", "index,label\n4,\n5,\n", "a.csv has no answers (2 rows without a label)"),
    "wrong header": ("a.csv", "idx,lbl\n4,cat\n", "a.csv line 1: the header must have a 'label' column"),
    "no label column": ("a.csv", "index,predicted\n4,cat\n", "a.csv line 1: the header must have a 'label' column"),
    "repeated column": ("a.csv", "index,label,label\n4,cat,dog\n", "a.csv line 1: repeated column"),
    "unknown format": ("a.txt", "hello world\n", "a.txt line 1: the header must have"),
    "too many fields": ("a.csv", "index,label\n4,cat\n5,dog,x\n", "a.csv line 3: 3 fields, but the header has 2"),
    "index not an integer": ("a.csv", "index,label\nfour,cat\n", "a.csv line 2: index 'four' is not an integer"),
    "empty path": ("a.csv", "path,label\n ,cat\n", "a.csv line 2: empty path"),
    "not JSON": ("a.json", '[{"index": 4,\n "label": }]', "a.json line 2: not valid JSON"),
    "JSON object": ("a.json", '{"index": 4, "label": "cat"}', "a.json: expected a JSON list"),
    "empty JSON list": ("a.json", "[]", "a.json is empty"),
    "JSON item without label": ("a.json", '[{"index": 4}]', "a.json item 1: needs 'label'"),
    "JSON boolean label": ("a.json", '[{"index": 4, "label": true}]', "a.json item 1: label must be a class name"),
    "Label Studio two choices": ("a.json", LS_TWO_CHOICES, "a.json task 1 (id 5): 2 choices"),
    "Label Studio task without item": (
        "a.json",
        json.dumps([{"data": {"text": "x"}, "annotations": []}]),
        "a.json task 1: data needs 'index' or 'image'",
    ),
    "not UTF-8": ("a.csv", b"index,label\n4,caf\xe9\n", "a.csv is not UTF-8 text"),
    "several problems": ("a.csv", "index,label\n4,cow\n5,dog\n99,cat\n", "line 2: label 'cow' is not a class (classes"),
}


def check_refused(project, capsys, args, expected, before=None):
    folder = project.parent
    before = before if before is not None else snapshot(folder)
    rc, out, err = label(args, capsys)
    assert rc == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("lbench: error: "), err
    assert expected in err, err
    assert snapshot(folder) == before  # byte-identical, no new (temp) file
    return err


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_bad_label_file(project, capsys, case):
    name, content, expected = BAD_FILES[case]
    f = project.parent / name
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    # a journal with one earlier entry is there too, and must stay byte-identical
    g = project.parent / "first.csv"
    g.write_text("index,label\n8,bird\n")
    assert label([g, "--pool", project], capsys)[0] == 0
    err = check_refused(project, capsys, [f, "--pool", project], expected)
    if case == "several problems":
        assert "(and 1 more problems)" in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--classes", "cat,dog,fish"], "--classes cat,dog,fish differs from the pool's classes cat,dog,bird"),
        (["--classes", "cat,dog,bird,fish"], "differs from the pool's classes"),
        (["--classes", "cat,skip,bird"], "'skip' cannot be a class name"),
        (["--classes", "cat,cat,bird"], "--classes repeats a class name"),
        (["--format", "xml"], "argument --format: invalid choice"),
        (["--no_such_option"], "unrecognized arguments: --no_such_option"),
        (["--wait", "-1"], "--wait must be >= 0"),
    ],
)
def test_bad_options(project, capsys, args, expected):
    f = project.parent / "a.csv"
    f.write_text("index,label\n4,cat\n")
    check_refused(project, capsys, [f, "--pool", project, *args], expected)


def test_missing_files(project, capsys):
    f = project.parent / "a.csv"
    f.write_text("index,label\n4,cat\n")
    check_refused(project, capsys, [project.parent / "nope.csv", "--pool", project], "nope.csv does not exist")
    check_refused(project, capsys, [f, "--pool", project.parent / "other.json"], "other.json does not exist")
    check_refused(project, capsys, [f], "the following arguments are required: --pool")
    check_refused(project, capsys, [f, "--pool", project, "--ids_from", project.parent / "x.csv"], "--ids_from")


def test_new_class_needs_allow_new_classes(project, capsys):
    f = project.parent / "a.csv"
    f.write_text("index,label\n4,fish\n")
    check_refused(project, capsys, [f, "--pool", project], "add --allow_new_classes to add it as a new class")


def test_allow_new_classes_without_names(tmp_path, capsys):
    from .conftest import make_project

    pool_file = make_project(tmp_path / "p", names=False)
    f = tmp_path / "p" / "a.csv"
    f.write_text("index,label\n4,1\n")
    check_refused(pool_file, capsys, [f, "--pool", pool_file, "--allow_new_classes"], "needs class names")


def test_damaged_pool_or_journal(project, capsys):
    folder = project.parent
    f = folder / "a.csv"
    f.write_text("index,label\n4,cat\n")
    g = folder / "b.csv"
    g.write_text("index,label\n5,cat\n")
    assert label([g, "--pool", project], capsys)[0] == 0
    journal = folder / "labels.journal.jsonl"
    good = journal.read_bytes()
    journal.write_bytes(b"{not json\n" + good)  # damaged before the last line
    check_refused(project, capsys, [f, "--pool", project], "labels.journal.jsonl line 1 is damaged")
    journal.write_bytes(good.replace(b'"seq":1', b'"seq":2'))
    check_refused(project, capsys, [f, "--pool", project], "entry number 2, expected 1")
    journal.unlink()  # the pool holds an entry the journal lost
    check_refused(project, capsys, [f, "--pool", project], "the pool file holds 1 entries of the label journal")
    journal.write_bytes(good)
    state = json.loads(project.read_text())
    state["skipped"] = [[0, "skip"]]  # a labeled item cannot be skipped
    project.write_text(json.dumps(state))
    check_refused(project, capsys, [f, "--pool", project], "invalid LabelPool state")


def test_an_entry_that_does_not_fit_is_refused(project, capsys):
    """A journal entry that no longer applies (the pool file was replaced) is an error, not a silent skip."""
    folder = project.parent
    g = folder / "b.csv"
    g.write_text("index,label\n5,cat\n")
    assert label([g, "--pool", project], capsys)[0] == 0
    pool = LabelPool(20, 3)  # an older pool.json put back, where item 5 has another label
    pool.add_labels(torch.tensor([5]), torch.tensor([1]), round=0)
    pool.save(project)
    f = folder / "a.csv"
    f.write_text("index,label\n4,cat\n")
    check_refused(project, capsys, [f, "--pool", project], "entry 1 does not fit the pool")
