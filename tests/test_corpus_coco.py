"""Hostile inputs: annotation files with bad entries: excluded, counted, the rest kept.

Each case ends as a clear error, a counted skip or a complete result; the
rules, the case makers and the shared inputs are in `tests/corpus.py`.
"""

import pytest
from corpus import (
    Case,
    _first_annotation,
    _first_image,
    _set,
    check_case,
    coco_skip,
)

CASES = [
    Case(
        "coco-path-traversal",
        coco_skip(_set(_first_image, file_name="../../etc/passwd"), "unsafe_file_name"),
        0,
    ),
    Case(
        "coco-nan-box",
        coco_skip(_set(_first_annotation, bbox=[float("nan"), 1, 5, 5]), "non_finite_bbox"),
        0,
    ),
    Case(
        "coco-negative-box",
        coco_skip(_set(_first_annotation, bbox=[1, 1, -5, 5]), "negative_size"),
        0,
    ),
    Case(
        "coco-box-outside",
        coco_skip(_set(_first_annotation, bbox=[5000, 5000, 5, 5]), "outside_image"),
        0,
    ),
    Case(
        "coco-unknown-category",
        coco_skip(_set(_first_annotation, category_id=999), "unknown_category"),
        0,
    ),
]


def test_the_cases_are_distinct_and_of_this_surface():
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.name.split("-")[0] for c in CASES} == {"coco"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case, workspace):
    check_case(case, workspace)
