"""Hostile inputs: configs and datasets given to `cornernet-train` (all refused before any work).

Each case ends as a clear error, a counted skip or a complete result; the
rules, the case makers and the shared inputs are in `tests/corpus.py`.
"""

import pytest
from corpus import (
    Case,
    _config_file,
    check_case,
    train,
)

CASES = [
    Case(
        "train-input-size-not-fitting",
        train("data.input_size=100", "data.output_size=25"),
        2,
        ("data.input_size=100", "nearest sizes", "95 or 127"),
    ),
    Case(
        "train-input-size-tiny",
        train("data.input_size=8", "data.output_size=2"),
        2,
        ("data.input_size", "31"),
    ),
    Case(
        "train-input-size-too-deep",
        train("model.overrides={dims: [8, 8, 8, 8, 8, 8, 8], modules: [1, 1, 1, 1, 1, 1, 1]}"),
        2,
        ("model.overrides", "data.input_size", "127"),
    ),
    Case(
        "train-output-size-mismatch",
        train("data.input_size=255"),
        2,
        ("data.output_size", "ceil(input_size / 4) = 64"),
    ),
    Case(
        "train-malformed-yaml",
        train(config=lambda ws: _config_file(ws, "model: [unclosed\n")),
        2,
        ("config.yaml", "YAML"),
    ),
    Case(
        "train-unknown-key",
        train(config=lambda ws: _config_file(ws, "data:\n  input_sise: 127\n")),
        2,
        ("config.yaml", "input_sise", "valid keys"),
    ),
    Case(
        "train-config-not-a-mapping",
        train(config=lambda ws: _config_file(ws, "- a\n- b\n")),
        2,
        ("config.yaml", "mapping"),
    ),
    Case("train-bad-set", train("train.steps"), 2, ("train.steps", "section.key=value")),
    Case("train-negative-steps", train("train.steps=-1"), 2, ("train.steps", "> 0")),
    Case("train-unknown-preset", train("model.preset=resnet"), 2, ("resnet", "choose one of")),
    Case(
        "train-missing-data-dir",
        train(data=lambda ws: ws.path("no_data")),
        2,
        ("no_data", "--data-dir"),
    ),
    Case(
        "train-missing-annotations",
        train(data=lambda ws: str(ws.root)),
        2,
        ("instances_train2017.json", "--data-dir"),
    ),
]


def test_the_cases_are_distinct_and_of_this_surface():
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.name.split("-")[0] for c in CASES} == {"train"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case, workspace):
    check_case(case, workspace)
