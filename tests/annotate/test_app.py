"""The page's web application through Flask's test client: answers, undo, reload, refusals."""

from __future__ import annotations

import json
import os

import pytest

from lbench.annotate.app import shortcuts
from lbench.label import read_journal
from lbench.pool import LabelPool
from tests.label.conftest import label

from .conftest import BATCH_SIZE, batch_of, labels_of, make_project, page_client, snapshot


def post(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


def test_state_lists_the_open_batch_in_rank_order_with_guesses(project, client):
    r = client.get("/api/state")
    assert r.status_code == 200
    state = r.get_json()
    files = (project / "index.txt").read_text().splitlines()[1:]
    batch = batch_of(project)
    assert state["classes"] == [{"name": "cat", "key": "1"}, {"name": "dog", "key": "2"}]
    assert [it["index"] for it in state["items"]] == batch and state["total"] == BATCH_SIZE and state["done"] == 0
    assert [it["path"] for it in state["items"]] == [files[i] for i in batch]
    assert state["items"][1]["guess"] == {"predicted": "dog", "probability": 0.55}
    assert all(it["answer"] is None for it in state["items"]) and state["annotator"] == "ana"
    page = client.get("/")
    assert page.status_code == 200 and b'src="static/annotate.js"' in page.data
    assert client.get("/static/annotate.js").mimetype == "text/javascript"
    assert client.get("/static/annotate.css").status_code == 200
    assert "Content-Security-Policy" in page.headers


def test_answers_skip_unsure_persist_and_a_reload_continues_at_the_first_open_item(project, client):
    batch = batch_of(project)
    for index, answer in zip(batch[:4], ["cat", "dog", "skip", "unsure"], strict=True):
        r = post(client, "/api/answer", {"index": index, "label": answer})
        assert r.status_code == 200, r.get_json()
        assert r.get_json()["seq"] is not None
    state = r.get_json()["state"]
    assert state["done"] == 4 and [it["answer"] for it in state["items"]] == [
        "cat",
        "dog",
        "skip",
        "unsure",
        None,
        None,
    ]
    pool = LabelPool.load(project / "pool.json")
    assert pool.labels[batch[:2]].tolist() == [0, 1]
    assert pool.skipped == {batch[2]: "skip", batch[3]: "unsure"}
    assert sorted(pool.pending) == sorted(batch[4:])
    entries = read_journal(project / "labels.journal.jsonl")
    assert [e["rows"] for e in entries] == [[[batch[0], 0]], [[batch[1], 1]], [[batch[2], "skip"]],
                                           [[batch[3], "unsure"]]]  # fmt: skip
    assert all(e["annotator"] == "ana" and e["source"] == "test page" for e in entries)
    # a new server (a restart; a reload asks the same): the answered items stay on the page, done
    state = page_client(project).get("/api/state").get_json()
    assert [it["index"] for it in state["items"]] == batch and state["done"] == 4
    assert next(it["index"] for it in state["items"] if it["answer"] is None) == batch[4]
    r = post(client, "/api/answer", {"index": batch[0], "label": "cat"})  # the same answer again: no change
    assert r.status_code == 200 and r.get_json()["seq"] is None
    r = post(client, "/api/answer", {"index": batch[2], "label": "dog"})  # a skipped item labeled after all
    assert r.status_code == 200 and labels_of(project / "pool.json", [batch[2]]) == [1]


def test_undo_takes_back_the_last_answer_given_on_this_page_only(project, client, capsys):
    batch = batch_of(project)
    seqs = [post(client, "/api/answer", {"index": i, "label": a}).get_json()["seq"]
            for i, a in zip(batch[:2], ["dog", "skip"], strict=True)]  # fmt: skip
    r = post(client, "/api/undo", {"seq": seqs[1]})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["index"] == batch[1] and r.get_json()["was"] == "skip"
    assert r.get_json()["state"]["done"] == 1
    pool = LabelPool.load(project / "pool.json")
    assert pool.skipped == {} and batch[1] in pool.pending and int(pool.labels[batch[0]]) == 1
    entry = read_journal(project / "labels.journal.jsonl")[-1]
    assert entry["format"] == "revert" and entry["revert"] == [[batch[1], "skip"]] and entry["annotator"] == "ana"
    before = snapshot(project)
    r = post(client, "/api/undo", {"seq": seqs[1]})  # undone already
    assert r.status_code == 400 and "nothing to undo" in r.get_json()["error"]
    assert page_client(project).post("/api/undo", json={"seq": seqs[0]}).status_code == 400  # not given there
    csv = project / "more.csv"
    csv.write_text(f"index,label\n{batch[2]},cat\n")
    assert label([csv, "--pool", project / "pool.json"], capsys)[0] == 0
    r = post(client, "/api/undo", {"seq": 3})  # the label command's entry, not this page's
    assert r.status_code == 400
    assert {k: v for k, v in snapshot(project).items() if k != "more.csv"} != before  # label wrote
    r = post(client, "/api/undo", {"seq": seqs[0]})
    assert r.status_code == 200 and labels_of(project / "pool.json", batch[:3]) == [-1, -1, 0]


def test_undo_refuses_an_answer_changed_elsewhere_and_writes_nothing(project, client, capsys):
    batch = batch_of(project)
    seq = post(client, "/api/answer", {"index": batch[0], "label": "skip"}).get_json()["seq"]
    csv = project / "later.csv"
    csv.write_text(f"index,label\n{batch[0]},dog\n")  # the person changes their mind with lbench label
    assert label([csv, "--pool", project / "pool.json"], capsys)[0] == 0
    before = snapshot(project)
    r = post(client, "/api/undo", {"seq": seq})
    assert r.status_code == 400
    assert r.get_json()["error"] == f"cannot revert item {batch[0]}: it holds 1 now, not 'skip' (changed since)"
    assert snapshot(project) == before


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"index": "B0", "label": "horse"}, 400, "label 'horse' is not a class (classes: cat, dog)"),
        ({"index": "B0", "label": ""}, 400, "label must be a class name"),
        ({"index": "B0", "label": 1}, 400, "label must be a class name"),
        ({"index": "B0"}, 400, "expected a JSON object with index, label"),
        ({"index": "0", "label": "cat"}, 400, "index must be an integer"),
        ({"index": True, "label": "cat"}, 400, "index must be an integer"),
        ({"index": 0, "label": "cat"}, 400, "item 0 is not in the open batch"),
        ({"index": 10_000, "label": "cat"}, 400, "item 10000 is not in the open batch"),
        ({"index": "B1", "label": "cat"}, 400, "is already labeled 'dog'; the file says 'cat'"),
    ],
)
def test_a_refused_answer_is_400_with_one_line_and_writes_nothing(project, client, body, status, message):
    batch = batch_of(project)
    assert post(client, "/api/answer", {"index": batch[1], "label": "dog"}).status_code == 200
    body = {k: batch[int(v[1])] if isinstance(v, str) and v[:1] == "B" else v for k, v in body.items()}
    before = snapshot(project)
    r = post(client, "/api/answer", body)
    assert r.status_code == status and message in r.get_json()["error"], r.get_json()
    assert "\n" not in r.get_json()["error"]
    assert snapshot(project) == before


def test_answers_must_be_json_from_this_machine(project, client):
    batch = batch_of(project)
    before = snapshot(project)
    r = client.post("/api/answer", data=f'{{"index": {batch[0]}, "label": "cat"}}', content_type="text/plain")
    assert r.status_code == 415  # what a form on another site can send without asking
    r = client.post("/api/answer", json={"index": batch[0], "label": "cat"}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    r = client.get("/api/state", headers={"Host": "evil.example:8765"})  # DNS rebinding
    assert r.status_code == 403
    assert client.get("/api/state", headers={"Host": "127.0.0.1:8765"}).status_code == 200
    assert snapshot(project) == before


def test_images_only_by_index_of_the_open_batch_everything_else_is_404(project, client, tmp_path):
    batch = batch_of(project)
    files = (project / "index.txt").read_text().splitlines()[1:]
    root = project.parent / "photos"
    r = client.get(f"/image/{batch[0]}")
    assert r.status_code == 200 and r.data == (root / files[batch[0]]).read_bytes() and r.mimetype == "image/png"
    labeled = LabelPool.load(project / "pool.json").labeled_index().tolist()[0]  # in the pool, not in the batch
    for url in [
        "/image/../../etc/passwd",
        "/image/..%2f..%2fetc%2fpasswd",
        "/image/%2e%2e/%2e%2e/etc/passwd",
        "/image//etc/passwd",
        "/image/-1",
        "/image/1.5",
        "/image/99999",
        f"/image/{labeled}",
        f"/image/{files[batch[0]]}",
        "/static/../x",
        "/static/../../setup.cfg",
        "/static/annotate.js/../../../project.yaml",
        "/static/%2e%2e/project.yaml",
        "/etc/passwd",
        "/pool.json",
        "/project.yaml",
        "/index.txt",
        str(root / "img_0.png"),
        "/api/../pool.json",
    ]:
        r = client.get(url)
        assert r.status_code == 404, url
        assert r.get_json() == {"error": "not found"}, url


def test_index_entries_leading_outside_the_image_folder_are_404(project, client, tmp_path):
    batch = batch_of(project)
    root = project.parent / "photos"
    secret = tmp_path / "secret.png"
    secret.write_bytes((root / "img_0.png").read_bytes())
    files = (project / "index.txt").read_text().splitlines()
    # a tampered index: a climbing path, an absolute path, and a symbolic link out of the folder
    os.symlink(secret, root / "link.png")
    for k, bad in enumerate(["../secret.png", str(secret), "link.png"]):
        files[1 + batch[k]] = bad
    (project / "index.txt").write_text("\n".join(files) + "\n")
    for k in range(3):
        assert client.get(f"/image/{batch[k]}").status_code == 404, k
    assert client.get(f"/image/{batch[3]}").status_code == 200


def test_page_answers_equal_label_command_answers(tmp_path, capsys):
    """Each page answer is what ``lbench label`` makes of a CSV with that one answer: same pool, same journal."""
    page = make_project(tmp_path / "a", capsys)
    cli = make_project(tmp_path / "b", capsys)
    batch = batch_of(page)
    assert batch == batch_of(cli)
    answers = list(zip(batch[:5], ["cat", "skip", "dog", "unsure", "dog"], strict=True))
    client = page_client(page)
    for index, answer in answers:
        assert post(client, "/api/answer", {"index": index, "label": answer}).status_code == 200
    for k, (index, answer) in enumerate(answers):
        csv = tmp_path / f"answer_{k}.csv"
        csv.write_text(f"index,label\n{index},{answer}\n")
        rc, _, err = label([csv, "--pool", cli / "pool.json", "--annotator", "ana"], capsys)
        assert rc == 0, err

    def comparable(project):
        state = json.loads((project / "pool.json").read_text())
        for h in state["history"]:
            del h["time"], h["source"]
        entries = read_journal(project / "labels.journal.jsonl")
        for e in entries:
            for key in ("time", "source", "sha256", "format"):
                e.pop(key, None)
        return state, entries

    assert comparable(page) == comparable(cli)


def test_shortcuts_skip_the_answer_keys():
    keys = shortcuts(40)
    assert keys[:10] == ["1", "2", "3", "4", "5", "6", "7", "8", "9", "a"]
    assert not {"s", "u", "z"} & set(keys) and keys[-1] == "" and len(set(keys[:32])) == 32
