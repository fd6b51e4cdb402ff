"""Hostile inputs: the serving client and a server that answers something else.

Each case ends as a clear error, a counted skip or a complete result; the
rules, the case makers and the shared inputs are in `tests/corpus.py`.
"""

import json

import pytest
from corpus import (
    STATUS,
    TINY_CONFIG,
    Case,
    _answer,
    _detections,
    check_case,
    serve,
    serve_args,
)

CASES = [
    Case(
        "serving-no-num-detections",
        serve(_answer([_detections(num_detections=None)])),
        1,
        ("not this model's output", "num_detections", "--url"),
    ),
    Case(
        "serving-predictions-ints",
        serve(_answer([1, 2, 3])),
        1,
        ("not this model's output", "predictions", "--url"),
    ),
    Case(
        "serving-too-many-detections",
        serve(_answer([_detections(num_detections=7)])),
        1,
        ("not this model's output", "num_detections", "--url"),
    ),
    Case(
        "serving-boxes-not-boxes",
        serve(_answer([_detections(detection_boxes=[1, 2])])),
        1,
        ("not this model's output", "detection_boxes", "--url"),
    ),
    Case(
        "serving-wrong-batch",
        serve(_answer([_detections(), _detections()])),
        1,
        ("not this model's output", "2 results for 1 images", "--url"),
    ),
    Case(
        "serving-outputs-not-named",
        serve({"body": json.dumps({"outputs": [1, 2]}).encode()}, argv=("predict", "--columnar")),
        1,
        ("not this model's output", "outputs", "--url"),
    ),
    Case(
        "serving-html-200",
        serve({"body": b"<html>proxy login</html>"}),
        1,
        ("not this model's output", "<html>", "--url"),
    ),
    Case(
        "serving-http-500",
        serve({"status": 500, "body": b"Internal Server Error"}),
        1,
        ("HTTP 500", "Internal Server Error", "see its log"),
    ),
    *(
        Case(
            f"serving-{name}",
            serve({"body": STATUS, key: 0.1}, argv=("--timeout", "1", "status"), image=False),
            1,
            ("within 1 s", "raise --timeout"),
        )
        for name, key in (("trickle", "trickle"), ("trickled-headers", "trickle_head"))
    ),
    Case(
        "serving-huge-answer",
        serve(
            {"body": b" " * 3000 + b"{}"},
            argv=("--max-response-bytes", "2000", "status"),
            image=False,
        ),
        1,
        ("larger than 2000 bytes", "--max-response-bytes"),
    ),
    Case("serving-timeout-zero", serve_args("--timeout", "0", "status"), 2, ("--timeout",)),
    Case("serving-retries-negative", serve_args("--retries", "-1", "status"), 2, ("--retries",)),
    Case(
        "serving-missing-image",
        serve_args("predict", "no_such.png"),
        2,
        ("no_such.png", "cannot read image"),
    ),
    Case(
        "serving-classes-not-json",
        lambda ws: serve_args("predict", "--classes", TINY_CONFIG, str(ws.model))(ws),
        2,
        ("--classes", "shapes_tiny.yaml", "not valid JSON"),
    ),
]


def test_the_cases_are_distinct_and_of_this_surface():
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.name.split("-")[0] for c in CASES} == {"serving"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case, workspace):
    check_case(case, workspace)
