"""One round record type: the driver writes RoundRecord.to_json; the driver and report read RoundRecord.from_json."""

import json

import pytest

from lbench.errors import ReportError
from lbench.records import RoundRecord


def test_every_line_the_driver_wrote_reads_back_equal(smoke_run):
    out, _ = smoke_run
    lines = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert len(lines) == 16
    for obj in lines:
        rec = RoundRecord.from_json(obj, "x:1")
        assert rec.to_json() == obj and list(rec.to_json()) == list(obj)  # same keys, same order
        assert RoundRecord.from_json(rec.to_json(), "x:1") == rec
        assert rec.num_selected == (20 if rec.round < 3 else 0) and rec.min_class_acc is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"selected": [1, "a"]}, "'selected' must be a list of pool indices"),
        ({"budget": 0}, "'budget' must be an integer >= 1"),
        ({"query": 3}, "'query' must be a string"),
        ({"test_min_class_acc": 1.5}, "'test_min_class_acc' must be a fraction in \\[0, 1\\]"),
        ({"stop_predictions": [0, 1.5]}, "'stop_predictions' must be a list of class indices"),
    ],
)
def test_fields_the_report_did_not_check_are_validated(smoke_run, change, message):
    out, _ = smoke_run
    obj = json.loads((out / "rounds.jsonl").read_text().splitlines()[0])
    with pytest.raises(ReportError, match=f"^f:7: {message}"):
        RoundRecord.from_json({**obj, **change}, "f:7")
