"""Round trips: each format imports into the pool, through the journal, and a later import sees it."""

import json

import pytest

from lbench.label import read_journal, read_label_file
from lbench.label.formats import LabelFileError
from lbench.pool import LabelPool

from .conftest import BATCH, item_id, label, make_project


def test_csv_by_path_round_trip(project, capsys):
    f = project.parent / "answers.csv"
    f.write_text(f"path,label\n{item_id(4)},cat\n{item_id(5)}, dog \n{item_id(6)},skip\n")
    rc, out, err = label([f, "--pool", project, "--annotator", "ana"], capsys)
    assert (rc, err) == (0, "")
    assert out.splitlines()[-1] == "labeled 2 items (1 skipped, 0 unsure); 2 still pending; pool: 4 labeled of 20"
    pool = LabelPool.load(project)
    assert pool.labels[[4, 5, 6]].tolist() == [0, 1, -1]
    assert pool.skipped == {6: "skip"}
    assert pool.pending == [7, 8]
    assert pool.order[-2:] == [(1, 4), (1, 5)]  # a new round after the initial labels
    assert pool.history[-1]["annotator"] == "ana" and pool.history[-1]["labeled"] == 2
    (entry,) = read_journal(project.parent / "labels.journal.jsonl")
    assert entry["rows"] == [[4, 0], [5, 1], [6, "skip"]]
    assert entry["annotator"] == "ana" and entry["source"] == str(f.resolve()) and entry["format"] == "csv"
    assert pool.journal_seq == 1


def test_filled_in_selected_csv_partial_answers(project, capsys):
    """selected.csv with a label column filled in for some rows: empty cells stay pending."""
    f = project.parent / "filled.csv"
    lines = (project.parent / "selected.csv").read_text().splitlines()
    f.write_text("\n".join([lines[0] + ",label", lines[1] + ",bird", lines[2] + ",", lines[3] + ",unsure"]) + "\n")
    rc, out, _ = label([f, "--pool", project], capsys)
    assert rc == 0
    assert "note: 1 rows have no answer (they stay pending)" in out
    pool = LabelPool.load(project)
    assert pool.labels[4] == 2 and pool.labels[5] == -1 and pool.skipped == {6: "unsure"}
    assert pool.pending == [5, 7, 8]


def test_json_round_trip_and_later_import_sees_it(project, capsys):
    f = project.parent / "answers.json"
    f.write_text(json.dumps([{"index": 4, "label": "bird"}, {"id": item_id(7), "label": 1}]))
    assert label([f, "--pool", project], capsys)[0] == 0
    pool = LabelPool.load(project)
    assert pool.labels[[4, 7]].tolist() == [2, 1] and pool.pending == [5, 6, 8]
    # the same file again: no change, no new journal entry
    before = (project.parent / "labels.journal.jsonl").read_bytes()
    rc, out, _ = label([f, "--pool", project], capsys)
    assert rc == 0 and "note: 2 answers were already in the pool (unchanged)" in out
    assert out.splitlines()[-1].startswith("labeled 0 items")
    assert (project.parent / "labels.journal.jsonl").read_bytes() == before
    # a later import contradicting it is refused: it sees the journaled labels
    f2 = project.parent / "again.csv"
    f2.write_text("index,label\n4,cat\n")
    rc, _, err = label([f2, "--pool", project], capsys)
    assert rc == 2 and "already labeled 'bird'" in err


def ls_task(data, *annotations, task_id=1):
    return {"id": task_id, "data": data, "annotations": list(annotations), "predictions": []}


def ls_annotation(choice=None, cancelled=False):
    result = (
        []
        if choice is None
        else [{"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}]
    )
    return {"id": 1, "result": result, "was_cancelled": cancelled, "completed_by": 1}


def test_label_studio_export_round_trip(project, capsys):
    tasks = [
        ls_task({"image": f"/data/local-files/?d={item_id(4)}"}, ls_annotation("dog"), task_id=11),
        ls_task({"index": 5}, ls_annotation("cat"), ls_annotation("bird", cancelled=True), task_id=12),
        ls_task({"image": "/data/upload/3/1a2b3c4d-0006.jpg"}, ls_annotation("Skip"), task_id=13),
        ls_task({"image": f"/data/local-files/?d={item_id(7)}"}, ls_annotation("cat", cancelled=True), task_id=14),
        ls_task({"image": f"/data/local-files/?d={item_id(8)}"}, task_id=15),  # not annotated yet
    ]
    f = project.parent / "export.json"
    f.write_text(json.dumps(tasks))
    rc, out, err = label([f, "--pool", project], capsys)
    assert (rc, err) == (0, "")
    assert "note: 2 rows have no answer" in out
    assert out.splitlines()[-1] == "labeled 2 items (1 skipped, 0 unsure); 2 still pending; pool: 4 labeled of 20"
    pool = LabelPool.load(project)
    assert pool.labels[[4, 5]].tolist() == [1, 0]  # the last annotation that was not cancelled
    assert pool.skipped == {6: "skip"} and pool.pending == [7, 8]
    assert read_journal(project.parent / "labels.journal.jsonl")[0]["format"] == "label-studio"


def test_ids_from_another_csv(tmp_path, capsys):
    pool_file = make_project(tmp_path / "p")
    (tmp_path / "p" / "selected.csv").unlink()  # the batch CSV was written elsewhere (select --output)
    batch = tmp_path / "elsewhere.csv"
    batch.write_text("rank,index,id\n0,9,photos/x.jpg\n")
    f = tmp_path / "answers.csv"
    f.write_text("id,label\nphotos/x.jpg,dog\n")
    rc, _, err = label([f, "--pool", pool_file], capsys)
    assert rc == 2 and "unknown id 'photos/x.jpg'" in err and "--ids_from" in err
    rc, out, _ = label([f, "--pool", pool_file, "--ids-from", batch], capsys)
    assert rc == 0 and "not in the open batch: 9" in out
    assert LabelPool.load(pool_file).labels[9] == 1


def test_class_names_given_once_then_stored(tmp_path, capsys):
    pool_file = make_project(tmp_path / "p", names=False)
    f = tmp_path / "a.csv"
    f.write_text("index,label\n4,2\n")  # no class names: class indices
    assert label([f, "--pool", pool_file], capsys)[0] == 0
    f.write_text("index,label\n5,dog\n")
    rc, _, err = label([f, "--pool", pool_file], capsys)
    assert rc == 2 and "--classes" in err
    rc, out, _ = label([f, "--pool", pool_file, "--classes", "cat,dog,bird"], capsys)
    assert rc == 0 and "class names stored in the pool file: cat, dog, bird" in out
    f.write_text("index,label\n6,bird\n")
    assert label([f, "--pool", pool_file], capsys)[0] == 0  # the names are remembered
    pool = LabelPool.load(pool_file)
    assert pool.class_names == ["cat", "dog", "bird"] and pool.labels[[4, 5, 6]].tolist() == [2, 1, 2]


def test_allow_new_classes_grows_the_class_list(project, capsys):
    f = project.parent / "a.csv"
    f.write_text("index,label\n4,fish\n5,cat\n6,fish\n7,owl\n")
    rc, out, _ = label([f, "--pool", project, "--allow_new_classes"], capsys)
    assert rc == 0 and "note: new classes: fish, owl" in out
    pool = LabelPool.load(project)
    assert pool.class_names == ["cat", "dog", "bird", "fish", "owl"] and pool.num_classes == 5
    assert pool.labels[[4, 5, 6, 7]].tolist() == [3, 0, 3, 4]
    assert pool.label_counts() == [2, 1, 0, 2, 1]


def test_skip_and_unsure_are_not_labels_nor_pending(project, capsys):
    f = project.parent / "a.csv"
    f.write_text("index,label\n4,skip\n5,UNSURE\n")
    rc, out, _ = label([f, "--pool", project], capsys)
    assert rc == 0 and out.splitlines()[-1].startswith("labeled 0 items (1 skipped, 1 unsure); 3 still pending")
    pool = LabelPool.load(project)
    assert pool.num_labeled == 2 and pool.labels[[4, 5]].tolist() == [-1, -1]
    assert 4 not in pool.labeled_index().tolist() and 4 in pool.unlabeled_index().tolist()
    assert pool.pending == [6, 7, 8] and pool.skipped == {4: "skip", 5: "unsure"}
    assert pool.excluded_from_selection() == [4, 5, 6, 7, 8]
    # a later answer replaces the skip
    f.write_text("index,label\n4,dog\n")
    assert label([f, "--pool", project], capsys)[0] == 0
    pool = LabelPool.load(project)
    assert pool.labels[4] == 1 and pool.skipped == {5: "unsure"}


def test_outside_the_open_batch_is_a_note(project, capsys):
    f = project.parent / "a.csv"
    f.write_text("index,label\n12,dog\n4,cat\n")
    rc, out, _ = label([f, "--pool", project], capsys)
    assert rc == 0 and "note: 1 answered items were not in the open batch: 12" in out
    assert LabelPool.load(project).labels[12] == 1


def test_clear_pending(project, capsys):
    f = project.parent / "a.csv"
    f.write_text("index,label\n4,cat\n")
    rc, out, _ = label([f, "--pool", project, "--clear_pending"], capsys)
    assert rc == 0 and "cleared 4 pending items" in out and "; 0 still pending;" in out
    pool = LabelPool.load(project)
    assert pool.pending == [] and pool.labels[4] == 0
    assert read_journal(project.parent / "labels.journal.jsonl")[0]["unpend"] == [5, 6, 7, 8]
    rc, out, _ = label(["--pool", project, "--clear-pending"], capsys)  # nothing left: nothing written
    assert rc == 0 and "cleared" not in out and len(read_journal(project.parent / "labels.journal.jsonl")) == 1


def test_dry_run_writes_nothing(project, capsys):
    from .conftest import snapshot

    f = project.parent / "a.csv"
    f.write_text("index,label\n4,cat\n5,skip\n")
    before = snapshot(project.parent)
    rc, out, _ = label([f, "--pool", project, "--dry_run"], capsys)
    assert rc == 0 and out.splitlines()[-1] == (
        "dry run, nothing written: labeled 1 items (1 skipped, 0 unsure); 3 still pending; pool: 3 labeled of 20"
    )
    assert snapshot(project.parent) == before


def test_formats_detected_and_forced(tmp_path):
    f = tmp_path / "answers.txt"
    f.write_text("index;label\n4;cat\n")  # a spreadsheet's semicolons, no suffix
    parsed = read_label_file(f)
    assert parsed.format == "csv" and [(r.value, r.label) for r in parsed.rows] == [(4, "cat")]
    f.write_text('[{"index": 4, "label": "cat"}]')
    assert read_label_file(f).format == "json"
    with pytest.raises(LabelFileError, match="not a Label Studio task"):
        read_label_file(f, "label-studio")
    assert BATCH == [4, 5, 6, 7, 8]
