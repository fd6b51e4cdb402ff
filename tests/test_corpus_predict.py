"""Hostile inputs: images and model files given to `cornernet-predict`.

Each case ends as a clear error, a counted skip or a complete result; the
rules, the case makers and the shared inputs are in `tests/corpus.py`.
"""

import pytest
from corpus import (
    IMAGE_FIX,
    Case,
    _model_with,
    check_case,
    predict,
    predict_model,
)

CASES = [
    Case("predict-empty-file", predict("empty.jpg"), 1, ("empty.jpg", IMAGE_FIX)),
    Case("predict-text-as-jpeg", predict("text.jpg"), 1, ("text.jpg", IMAGE_FIX)),
    Case("predict-random-bytes", predict("random.png"), 1, ("random.png", IMAGE_FIX)),
    Case("predict-truncated-png", predict("truncated.png"), 1, ("truncated.png", IMAGE_FIX)),
    Case("predict-html-as-png", predict("html.png"), 1, ("html.png", IMAGE_FIX)),
    Case("predict-empty-folder", predict("folder.png"), 1, ("folder.png", "holds no image")),
    Case("predict-symlink-to-text", predict("symlink.png"), 1, ("symlink.png", IMAGE_FIX)),
    Case("predict-cmyk-jpeg", predict("cmyk.jpg"), 0, outputs=("out/cmyk.json",)),
    Case("predict-16-bit-png", predict("gray16.png"), 0, outputs=("out/gray16.json",)),
    Case("predict-palette-png", predict("palette.png"), 0, outputs=("out/palette.json",)),
    Case("predict-animated-gif", predict("animated.gif"), 0, outputs=("out/animated.json",)),
    Case("predict-rgba-png", predict("rgba.png"), 0, outputs=("out/rgba.json",)),
    Case("predict-one-pixel", predict("one_pixel.png"), 0, outputs=("out/one_pixel.json",)),
    Case(
        "predict-score-threshold",
        predict("rgba.png", extra=("--score-threshold", "2")),
        2,
        ("--score-threshold", "[0, 1]"),
    ),
    Case(
        "predict-output-is-a-file",
        lambda ws: (ws.root / "out").write_text("x") and predict("rgba.png")(ws),
        2,
        ("out", "--output must be a folder"),
    ),
    Case(
        "predict-model-missing",
        predict_model(lambda ws: ws.path("nothing.keras")),
        2,
        ("nothing.keras", "pass the .keras file"),
    ),
    Case(
        "predict-model-random-bytes",
        predict_model(
            lambda ws: (ws.root / "m.keras").write_bytes(b"\x00" * 99) and ws.path("m.keras")
        ),
        2,
        ("m.keras", "Pass a .keras file"),
    ),
    Case(
        "predict-model-h5",
        predict_model(lambda ws: (ws.root / "m.h5").write_bytes(b"x") and ws.path("m.h5")),
        2,
        ("m.h5", ".keras"),
    ),
    Case(
        "predict-model-invalid-test-setting",
        predict_model(lambda ws: _model_with(ws, lambda c: c["test_config"].update(top_k=-5))),
        2,
        ("edited.keras", "top_k", "Fix it"),
    ),
    Case(
        "predict-model-class-names-mismatch",
        predict_model(lambda ws: _model_with(ws, lambda c: c.update(class_names=["a"]))),
        2,
        ("edited.keras", "class_names", "pass one name per class"),
    ),
]


def test_the_cases_are_distinct_and_of_this_surface():
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.name.split("-")[0] for c in CASES} == {"predict"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case, workspace):
    check_case(case, workspace)
