"""Hostile inputs: datasets and model files given to `cornernet-evaluate`.

Each case ends as a clear error, a counted skip or a complete result; the
rules, the case makers and the shared inputs are in `tests/corpus.py`.
"""

import pytest
from corpus import (
    Case,
    _dataset,
    _duplicate_image_ids,
    _text,
    check_case,
    evaluate,
)

CASES = [
    Case(
        "evaluate-model-invalid-test-setting",
        evaluate("--set", "test.top_k=-5"),
        2,
        ("test.top_k", "--set test.top_k=-5"),
    ),
    Case(
        "evaluate-annotations-not-json",
        evaluate(data=lambda ws: _dataset(ws, _text("{not json"))),
        2,
        ("instances_val2017.json",),
    ),
    Case(
        "evaluate-annotations-a-list",
        evaluate(data=lambda ws: _dataset(ws, _text("[1, 2, 3]"))),
        2,
        ("instances_val2017.json",),
    ),
    Case(
        "evaluate-duplicate-image-ids",
        evaluate(data=lambda ws: _dataset(ws, _duplicate_image_ids)),
        2,
        ("instances_val2017.json", "duplicate"),
    ),
    Case(
        "evaluate-missing-split",
        evaluate("--split", "test2099"),
        2,
        ("instances_test2099.json", "--split"),
    ),
    Case("evaluate-max-images", evaluate("--max-images", "0"), 2, ("--max-images",)),
    Case(
        "evaluate-output-is-a-folder",
        evaluate("--detections", "."),
        2,
        ("--detections is a directory", ".json"),
    ),
]


def test_the_cases_are_distinct_and_of_this_surface():
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.name.split("-")[0] for c in CASES} == {"evaluate"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case, workspace):
    check_case(case, workspace)
