"""Hostile inputs against every entry point, generated here at test time.

Each case feeds one bad (or merely unusual) input to one surface: an image to
`cornernet-predict`, a config or dataset to `cornernet-train` and
`cornernet-evaluate`, a model file or output path to `cornernet-export`, an
answer of a broken server to the serving client, an annotation file to
`CocoDataset.open`. Each ends as

- a clear error: the documented exit code (1 runtime failure, 2 usage or
  input error), one message on stderr naming the file or key and the fix, no
  Python traceback, and nothing half-written (no temporary or partial file,
  no output at all for a usage error); or
- a counted skip: the bad entry is excluded and reported by id, the rest kept;
- or, for unusual but valid input (CMYK, 16-bit, palette, animated images),
  exit code 0 and complete outputs.

The command lines run in this process (their `main` functions) and share one
tiny model: the session fixture `export_model`, saved once to a `.keras` file.
"""

import contextlib
import dataclasses
import io
import json
import os
import shutil
import traceback
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serving_double import MisbehavingServer

from cornernet_tf.cli import evaluate as evaluate_cli
from cornernet_tf.cli import export as export_cli
from cornernet_tf.cli import predict as predict_cli
from cornernet_tf.cli import train as train_cli
from cornernet_tf.data.coco import CocoDataset
from cornernet_tf.serving import cli as serving_cli

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = str(REPO / "configs" / "shapes_tiny.yaml")


@dataclasses.dataclass(frozen=True)
class Case:
    """One hostile input.

    Attributes:
        name: the test id.
        run: `run(ws)` → `(exit code, stderr)`, given the `Workspace`.
        code: the expected exit code.
        says: substrings stderr must hold: the file or key, and the fix.
        outputs: files (relative to the workspace) the run must leave complete;
            for codes != 0 they must not exist at all.
    """

    name: str
    run: Callable
    code: int
    says: tuple = ()
    outputs: tuple = ()


@dataclasses.dataclass
class Workspace:
    root: Path
    model: Path
    data: Path

    def path(self, name: str) -> str:
        return str(self.root / name)


# ------------------------------------------------------------ input makers


def _png(path, array, **options):
    Image.fromarray(array).save(path, **options)
    return str(path)


def _rgb(h=40, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _image_file(ws, kind) -> str:
    path = ws.root / f"{kind}"
    if kind == "empty.jpg":
        path.write_bytes(b"")
    elif kind == "text.jpg":
        path.write_text("this is not a JPEG\n")
    elif kind == "random.png":
        path.write_bytes(np.random.default_rng(1).bytes(2000))
    elif kind == "truncated.png":
        buffer = io.BytesIO()
        Image.fromarray(_rgb()).save(buffer, format="PNG")
        path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    elif kind == "html.png":
        path.write_text("<html><body>404 Not Found</body></html>")
    elif kind == "cmyk.jpg":
        Image.fromarray(_rgb()).convert("CMYK").save(path, format="JPEG")
    elif kind == "gray16.png":
        _png(path, (np.arange(40 * 48, dtype=np.uint16).reshape(40, 48) * 31))
    elif kind == "palette.png":
        Image.fromarray(_rgb()).convert("P").save(path)
    elif kind == "animated.gif":
        frames = [Image.fromarray(_rgb(seed=s)).convert("P") for s in range(3)]
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    elif kind == "rgba.png":
        _png(path, np.dstack([_rgb(), np.full((40, 48), 128, np.uint8)]))
    elif kind == "one_pixel.png":
        _png(path, _rgb(1, 1))
    elif kind == "folder.png":
        path.mkdir()
    elif kind == "symlink.png":
        (ws.root / "notes.txt").write_text("plain text\n")
        path.symlink_to(ws.root / "notes.txt")
    return str(path)


def _config_file(ws, text) -> str:
    path = ws.root / "config.yaml"
    path.write_text(text)
    return str(path)


def _model_with(ws, edit) -> str:
    """A copy of the shared .keras file with its config.json edited by `edit(config)`."""
    path = ws.root / "edited.keras"
    with zipfile.ZipFile(ws.model) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                edit(config["config"])
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    return str(path)


def _dataset(ws, edit=None, split="val2017") -> str:
    """A copy of the shared dataset with `edit(annotations)` applied to the split's JSON."""
    root = ws.root / "dataset"
    shutil.copytree(ws.data, root)
    annotation = root / "annotations" / f"instances_{split}.json"
    if edit is not None:
        content = json.loads(annotation.read_text())
        result = edit(content, root / split)
        annotation.write_text(result if isinstance(result, str) else json.dumps(content))
    return str(root)


# ------------------------------------------------------------------ runners


def _cli(main, argv):
    """Runs a command line's `main` in-process: `(exit code, stderr)`; a raised exception
    is what a user would see as a traceback."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse
            code = exit_.code if isinstance(exit_.code, int) else 2
        except Exception:  # noqa: BLE001 - the corpus records it as a traceback
            code = "traceback"
            err.write(traceback.format_exc())
    return code, err.getvalue()


def predict(*images, extra=()):
    def run(ws):
        argv = ["--model", str(ws.model), "--output", ws.path("out"), *extra]
        return _cli(predict_cli.main, [*argv, *(_image_file(ws, i) for i in images)])

    return run


def predict_model(make_model):
    def run(ws):
        model = make_model(ws)
        image = _png(ws.root / "ok.png", _rgb())
        return _cli(predict_cli.main, ["--model", model, "--output", ws.path("out"), image])

    return run


def train(*sets, config=TINY_CONFIG, data=None):
    def run(ws):
        cfg = config(ws) if callable(config) else config
        data_dir = data(ws) if callable(data) else str(ws.data)
        argv = ["--config", cfg, "--data-dir", data_dir, "--model-dir", ws.path("run")]
        for item in sets:
            argv += ["--set", item]
        return _cli(train_cli.main, argv)

    return run


def evaluate(*extra, data=None, model=None):
    def run(ws):
        data_dir = data(ws) if callable(data) else str(ws.data)
        model_file = model(ws) if callable(model) else str(ws.model)
        argv = ["--config", TINY_CONFIG, "--data-dir", data_dir, "--model", model_file]
        argv += ["--output", ws.path("metrics.json"), "--verbose", "0", *extra]
        return _cli(evaluate_cli.main, argv)

    return run


def export(*extra, output="exports"):
    def run(ws):
        out = output(ws) if callable(output) else ws.path(output)
        argv = ["--model", str(ws.model), "--output", out, *extra]
        return _cli(export_cli.main, argv)

    return run


def serve(*replies, argv=("predict",), image=True):
    def run(ws):
        with MisbehavingServer(*replies) as server:
            files = [_png(ws.root / "x.png", _rgb())] if image else []
            return _cli(serving_cli.main, ["--url", server.url, *argv, *files])

    return run


def serve_args(*argv):
    def run(ws):
        return _cli(serving_cli.main, ["--url", "http://127.0.0.1:9", *argv])

    return run


def _answer(rows):
    return {"body": json.dumps({"predictions": rows}).encode()}


def _detections(**change):
    row = {
        "detection_boxes": [[1.0, 2.0, 30.0, 40.0], [-1.0, -1.0, -1.0, -1.0]],
        "detection_scores": [0.9, -1.0],
        "detection_classes": [0, -1],
        "num_detections": 1,
    }
    row.update(change)
    return {k: v for k, v in row.items() if v is not None}


def coco_skip(edit, kind, image_id=None):
    """`CocoDataset.open` on a split with one bad entry: excluded, counted, the rest kept."""

    def run(ws):
        root = _dataset(ws, edit, split="train2017")
        dataset = CocoDataset.open(root, "train2017")
        problems = [p for p in dataset.report.problems if p.kind == kind]
        total = len(
            json.loads(Path(ws.data, "annotations", "instances_train2017.json").read_text())[
                "images"
            ]
        )
        kept = len(dataset.records)
        message = "; ".join(str(p) for p in dataset.report.problems)
        ok = len(problems) == 1 and (image_id is None or problems[0].image_id == image_id)
        ok = ok and kept >= total - 1 and kept > 0
        return (0 if ok else "wrong"), message

    return run


def _first_image(content):
    return content["images"][0]


def _first_annotation(content):
    return content["annotations"][0]


def _set(getter, **values):
    def edit(content, _image_dir):
        getter(content).update(values)

    return edit


def _many_objects(content, _image_dir):
    image_id = content["images"][0]["id"]
    template = next(a for a in content["annotations"] if a["image_id"] == image_id)
    next_id = max(a["id"] for a in content["annotations"]) + 1
    content["annotations"] += [
        {**template, "id": next_id + i, "bbox": [1 + i % 10, 1, 5, 5]} for i in range(130)
    ]


def _text(text):
    return lambda content, _image_dir: text


def _duplicate_image_ids(content, _image_dir):
    content["images"][1]["id"] = content["images"][0]["id"]


# ------------------------------------------------------------------ corpus

IMAGE_FIX = "pass a JPEG, PNG, GIF, BMP or WebP file"
STATUS = b'{"model_version_status": []}'
CASES = [
    # --- images to cornernet-predict: unreadable ones fail (exit 1), the rest run.
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
    # --- model files
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
    Case(
        "evaluate-model-invalid-test-setting",
        evaluate("--set", "test.top_k=-5"),
        2,
        ("test.top_k", "--set test.top_k=-5"),
    ),
    # --- configs and datasets to cornernet-train (all refused before any work)
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
    # --- datasets to cornernet-evaluate
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
    # --- annotations with bad entries: excluded, counted, the rest kept
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
    # --- cornernet-export
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
    # --- the serving client and a server that answers something else
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

# What the outcome of a case is called in reports: a clear error, a counted
# skip (the `coco-` cases) or a valid input that ran.
SKIP_CASES = [c.name for c in CASES if c.name.startswith("coco-")]


@pytest.fixture(scope="module")
def corpus_inputs(export_model, shapes_root, tmp_path_factory):
    """The shared tiny model as a .keras file, and a copy of the shapes dataset."""
    root = tmp_path_factory.mktemp("corpus")
    model = root / "model.keras"
    export_model.save(model)
    return model, shapes_root


@pytest.fixture
def workspace(corpus_inputs, tmp_path, monkeypatch, export_model):
    model, data = corpus_inputs
    original = predict_cli.load_model

    def load_shared(path):  # the shared model without reloading it; others load for real
        return export_model if os.path.samefile(path, model) else original(path)

    for module in (predict_cli, evaluate_cli, export_cli):
        monkeypatch.setattr(module, "load_model", load_shared)
    ws_root = tmp_path / "ws"
    ws_root.mkdir()
    monkeypatch.chdir(ws_root)
    return Workspace(ws_root, model, data)


# Where the tools write (a folder each: predict's --output, train's --model-dir,
# export's --output).
TOOL_OUTPUTS = ("out", "run", "exports")


def _listing(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_the_corpus_is_large_and_covers_every_surface():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)
    surfaces = {c.name.split("-")[0] for c in CASES}
    assert surfaces == {"predict", "train", "evaluate", "coco", "export", "serving"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case, workspace):
    before = _listing(workspace.root)
    code, err = case.run(workspace)
    after = _listing(workspace.root)
    assert code != "traceback", f"TRACEBACK: {err}"
    assert "Traceback (most recent call last)" not in err, f"TRACEBACK: {err}"
    assert code == case.code, f"WRONG: exit {code}, expected {case.code}; stderr: {err}"
    for text in case.says:
        assert text in err, f"WRONG: the message does not say {text!r}: {err}"
    if code != 0:  # one message (after argparse's usage lines)
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("usage:", " "))]
        assert len(lines) <= 2, f"WRONG: not one clear message: {err}"
    new = after - before
    half_written = [n for n in new if os.path.basename(n).startswith(".") or "incomplete" in n]
    assert not half_written, f"WRONG: left behind {half_written}"
    if code == 2:  # a usage error writes nothing
        written = [o for o in TOOL_OUTPUTS if (workspace.root / o).is_dir()]
        assert not written, f"WRONG: a usage error wrote {written}"
    for name in new:
        if name.endswith(".json") and not name.startswith("dataset"):
            json.loads((workspace.root / name).read_text())  # complete
    for output in case.outputs:
        json.loads((workspace.root / output).read_text())  # complete JSON
