"""Hostile inputs: model files and output paths given to `cornernet-export`.

Each case ends as a clear error, a counted skip or a complete result; the
rules, the case makers and the shared inputs are in `tests/corpus.py`.
"""

import pytest
from corpus import (
    Case,
    check_case,
    export,
)

CASES = [
    Case(
        "export-output-is-a-file",
        export(
            "--format",
            "saved_model",
            output=lambda ws: (ws.root / "f").write_text("x") and ws.path("f"),
        ),
        2,
        ("f", "--output"),
    ),
    Case(
        "export-int8-without-data",
        export("--format", "tflite", "--quantize", "int8"),
        2,
        ("--quantize int8 needs --data-dir",),
    ),
    Case(
        "export-no-calibration",
        export("--format", "tflite", "--num-calibration", "0"),
        2,
        ("--num-calibration",),
    ),
    Case(
        "export-version-zero", export("--format", "saved_model", "--version", "0"), 2, ("version",)
    ),
]


def test_the_cases_are_distinct_and_of_this_surface():
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.name.split("-")[0] for c in CASES} == {"export"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case, workspace):
    check_case(case, workspace)
