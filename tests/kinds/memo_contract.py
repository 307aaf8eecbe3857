"""The memo kind's contract harness: a board of three notes in a temporary JSON file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.kinds.contract import Harness, register

from changegate.models import Target
from changegate.settings import Settings


@register("memo")
def memo_harness(request: pytest.FixtureRequest) -> Harness:
    """Board `ops` with notes n-0, n-1, n-2 in `tmp_path/memo.json`."""
    tmp: Path = request.getfixturevalue("tmp_path")
    notes = {f"n-{i}": {"text": "hello", "priority": 1} for i in range(3)}
    (tmp / "memo.json").write_text(
        json.dumps({"boards": {"ops": notes}, "receipts": {}, "writes": 0})
    )
    return Harness(
        settings=Settings(data_dir=tmp),
        target=Target(kind="memo", selector={"board": "ops"}),
        operation="set_note",
        parameters={"text": "changed", "priority": 7},
        spellings=[
            (
                Target(kind="memo", selector={"board": "ops", "instances": "n-2,n-0,n-2"}),
                Target(kind="memo", selector={"board": "ops", "instances": "n-0,n-2"}),
            )
        ],
        bad_selectors=[
            ({"board": "OPS"}, "target.selector.board"),
            ({"board": "ops", "shelf": "x"}, "target.selector.shelf"),
        ],
        bad_parameters=[
            ({"priority": 10}, "change.parameters.priority"),
            ({"text": 5}, "change.parameters.text"),
        ],
    )
